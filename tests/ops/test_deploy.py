"""The deployment examples agree with each other and with the host: ports, probes, drain time, user."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from host.config.loader import load

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "examples" / "deploy"


def manifest() -> dict[str, dict]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all((DEPLOY / "kubernetes.yaml").read_text())}


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_dockerfile_runs_the_host_as_a_non_root_user_and_drains_on_sigterm():
    text = (DEPLOY / "Dockerfile").read_text()
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user and user[-1] not in ("root", "0")
    assert re.search(r'^ENTRYPOINT \[.*"agenthost", "run"\]$', text, re.M)
    assert re.search(r"^STOPSIGNAL SIGTERM$", text, re.M)
    assert "AGENTHOST_HTTP=0.0.0.0:8081" in text and re.search(r"^EXPOSE 8081$", text, re.M)
    for source in re.findall(r"^COPY (\S+) ", text, re.M):
        assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which is not in the repository"


def test_kubernetes_probes_grace_period_and_agents(tmp_path):
    docs = manifest()
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    args = container["args"]
    port = int(flag(args, "--http").rpartition(":")[2])
    assert container["ports"][0]["containerPort"] == port
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0

    for name, body in docs["ConfigMap"]["data"].items():  # the agent files the pods will see
        (tmp_path / name).write_text(body)
    catalog = load([str(tmp_path)], check_imports=False)
    assert catalog.ok, catalog.problems
    longest_shutdown = max(a.shutdown.timeout for a in catalog.agents)
    drain = float(flag(args, "--drain-timeout"))
    assert pod["terminationGracePeriodSeconds"] > drain + longest_shutdown, \
        "Kubernetes would kill the host before running jobs finish draining"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "agents")
    assert mount["mountPath"] == args[-1]


def test_kubernetes_guards_status_and_metrics_with_a_token():
    [container] = manifest()["Deployment"]["spec"]["template"]["spec"]["containers"]
    token = next(e for e in container["env"] if e["name"] == "AGENTHOST_HTTP_TOKEN")
    assert token["valueFrom"]["secretKeyRef"]["key"] == "token"
    assert "AGENTHOST_HTTP_TOKEN" in (DEPLOY / "Dockerfile").read_text()
