"""The deployment examples agree with each other and with the host: ports, probes, drain time, user."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from host.config.loader import load
from host.testing.promql import dashboard_queries, metrics_and_labels

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


def _tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    assert path, f"{name} is not installed (scripts/setup.sh installs it)"
    return path


def test_prometheus_rules_check_and_their_unit_tests_pass():
    promtool = _tool("promtool")
    for args in (["check", "rules", "prometheus-rules.yaml"], ["test", "rules", "prometheus-rules.test.yaml"]):
        done = subprocess.run([promtool, *args], cwd=DEPLOY, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stdout + done.stderr


def test_the_rule_tests_can_fail(tmp_path):
    """A rule that no longer fires must break `promtool test rules`."""
    promtool = _tool("promtool")
    (tmp_path / "prometheus-rules.yaml").write_text(
        (DEPLOY / "prometheus-rules.yaml").read_text().replace("agenthost_ready == 0", "agenthost_ready == 2"))
    (tmp_path / "prometheus-rules.test.yaml").write_text((DEPLOY / "prometheus-rules.test.yaml").read_text())
    done = subprocess.run([promtool, "test", "rules", "prometheus-rules.test.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0 and "AgenthostNotReady" in done.stdout + done.stderr


KUBERNETES_VERSION = "1.34.0"  # the version the manifest is checked against


def test_kubernetes_manifest_validates_against_the_kubernetes_schemas():
    done = subprocess.run([_tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION,
                           str(DEPLOY / "kubernetes.yaml")], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    kinds = {doc["kind"] for doc in yaml.safe_load_all((DEPLOY / "kubernetes.yaml").read_text()) if doc}
    assert {"ConfigMap", "Deployment", "PodDisruptionBudget"} <= kinds
    annotations = manifest()["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"


def test_systemd_unit_drains_on_stop_and_verifies(tmp_path):
    text = (DEPLOY / "agenthost.service").read_text()
    keys = dict(re.findall(r"^(\w+)=(.*)$", text, re.M))
    assert keys["KillMode"] == "mixed" and keys["KillSignal"] == "SIGTERM"
    assert keys["ExecReload"] == "/bin/kill -HUP $MAINPID"
    args = keys["ExecStart"].split()
    drain = float(flag(args, "--drain-timeout"))
    longest = max(a.shutdown.timeout for a in load([str(ROOT / "agents.d")], check_imports=False).agents)
    assert float(keys["TimeoutStopSec"]) > drain + longest
    done = verify_unit(text, tmp_path)
    assert done.returncode == 0 and "agenthost.service" not in done.stderr, done.stderr


def verify_unit(text: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """systemd-analyze verify of the unit, pointed at this checkout's host (it checks that the command exists)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not on this machine")
    unit = folder / "agenthost.service"
    unit.write_text(text.replace("/opt/agenthost/venv/bin/agenthost", str(Path(sys.executable).parent / "agenthost"))
                    .replace("User=agenthost", "User=root").replace("Group=agenthost", "Group=root"))
    return subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False)


def test_a_broken_unit_fails_verification(tmp_path):
    done = verify_unit((DEPLOY / "agenthost.service").read_text().replace("KillMode=mixed", "KillMode=sometimes"),
                       tmp_path)
    assert "agenthost.service" in done.stderr and "kill mode" in done.stderr


def test_every_dashboard_query_parses_into_known_shapes():
    queries = dashboard_queries()
    assert len(queries) >= 15
    names = {name for q in queries for name, _ in metrics_and_labels(q)}
    for wanted in ("agenthost_jobs_running", "agenthost_jobs_failed_total", "agenthost_jobs_refused_total",
                   "agenthost_jobs_declined_total",
                   "agenthost_offer_to_entrypoint_seconds_bucket", "agenthost_job_memory_bytes",
                   "agenthost_agent_memory_limit_bytes", "agenthost_idle_processes", "agenthost_worker_registered",
                   "agenthost_reloads_total", "agenthost_cpu_load", "agenthost_ready"):
        assert wanted in names, f"no panel reads {wanted}"
