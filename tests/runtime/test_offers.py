"""An offer's answer, in the parts apart from the job table: what the check's answer becomes, and an offer not
taken."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

from host.config.definitions import AgentDefinition
from host.config.loader import load
from host.ops.metrics import Metrics
from host.runtime.admission import Accept, Decline, Refuse
from host.runtime.agents import Agent, Version
from host.runtime.offers import after_the_check, not_taken, version_for
from host.runtime.versions import Health, bounded, in_rotation, max_jobs
from host.tracing import JobSpan

ACCEPT = Accept("agent-a", "a", "", {}, None)


def test_an_accept_stands_unless_the_host_began_draining_or_the_agent_filled_up_during_the_check():
    assert after_the_check(ACCEPT, draining=False, running=1, max_jobs=2) is ACCEPT
    assert after_the_check(ACCEPT, draining=False, running=5, max_jobs=0) is ACCEPT  # 0: no bound
    assert after_the_check(ACCEPT, draining=True, running=0, max_jobs=0) == Decline(
        "draining", "the host began draining during the check")
    assert after_the_check(ACCEPT, draining=False, running=2, max_jobs=2) == Decline(
        "max_jobs", "the agent reached max_jobs (2) during the check")
    refused = Refuse("invalid_metadata", "$.user: required")
    assert after_the_check(refused, draining=True, running=9, max_jobs=1) is refused


def test_an_offer_not_taken_is_counted_by_reason_and_said(caplog):
    metrics = Metrics()
    caplog.set_level(logging.INFO, logger="agenthost.host")
    not_taken(Refuse("invalid_metadata", "$.user: required"), "a", metrics, JobSpan(None), {"job_id": "AJ_1"})
    not_taken(Decline("max_jobs", "at max_jobs (2)"), "a", metrics, JobSpan(None), {"job_id": "AJ_2"})
    text = metrics.render().decode()
    assert 'agenthost_jobs_refused_total{agent="a",reason="invalid_metadata"} 1.0' in text
    assert 'agenthost_jobs_declined_total{agent="a",reason="max_jobs"} 1.0' in text
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("ERROR", "refused job: $.user: required"), ("INFO", "declined job offer: at max_jobs (2)")]


class Pool:
    """A version's process pool, with a process ready."""

    last_error, idle_count = None, 1


def versioned_agent(folder: Path, text: str) -> tuple[Agent, list[AgentDefinition]]:
    """The agent of the versions `text` defines, written in `folder`, with their definitions."""
    (folder / "bot.yaml").write_text(text)
    definitions = load([str(folder)], check_imports=False).require_ok().agents
    return Agent(tuple(Version(d, None, Pool()) for d in definitions), None), definitions  # type: ignore[arg-type]


def test_an_offers_version_follows_its_metadata_field_with_route_by_and_avoids_a_failed_one(tmp_path):
    agent, _ = versioned_agent(tmp_path, "name: bot\nversion: v1\nweight: 1\nroute_by: tenant\nentrypoint: m:f\n---\n"
                                         "name: bot\nversion: v2\nweight: 1\nroute_by: tenant\nentrypoint: m:f\n")
    health = Health()
    def chosen(room: str, tenant: str, avoid: str | None = None) -> str | None:
        return version_for(agent, health, room, json.dumps({"tenant": tenant}), avoid).definition.version

    for tenant in ("acme", "globex", "initech", "umbrella"):  # one tenant's calls, in any room, on one version
        assert len({chosen(f"room-{n}", tenant) for n in range(12)}) == 1
    assert {chosen("room-1", f"tenant-{n}") for n in range(40)} == {"v1", "v2"}  # tenants spread over both
    first = chosen("room-1", "acme")
    assert chosen("room-1", "acme", avoid=first) != first  # a retry of a call avoids the version it failed on


def test_a_version_at_its_max_jobs_hands_the_call_to_another(tmp_path):
    agent, definitions = versioned_agent(
        tmp_path, "name: bot\nversion: stable\nweight: 1\nentrypoint: m:f\nlimits: {max_jobs: 1}\n---\n"
                  "name: bot\nversion: canary\nweight: 1000\nentrypoint: m:f\nlimits: {max_jobs: 2}\n")
    assert bound(agent, Health()) == 3  # the versions' bounds together
    running = {"stable": 0, "canary": 2}

    def chosen(room: str) -> str | None:
        return version_for(agent, Health(), room, json.dumps({}), None,
                           lambda d: running[d.version or ""]).definition.version

    assert {chosen(f"room-{n}") for n in range(20)} == {"stable"}  # the canary is full: stable takes them
    running["canary"] = 1
    assert {chosen(f"room-{n}") for n in range(20)} == {"canary"}  # room again: by weight
    running["canary"] = 2
    out = Health()
    for _ in range(3):
        out.record(definitions[0], failed=True)  # stable taken out: the full canary is kept, and declines
    assert {version_for(agent, out, f"room-{n}", "{}", None, lambda d: running[d.version or ""]).definition.version
            for n in range(20)} == {"canary"}
    running["canary"] = 1  # the canary with room, but this call failed on it: stable, not the canary again
    running["stable"] = 1
    assert {version_for(agent, Health(), f"room-{n}", "{}", "canary",
                        lambda d: running[d.version or ""]).definition.version for n in range(20)} == {"stable"}
    unbounded = Agent((Version(definitions[0], None, Pool()),  # type: ignore[arg-type]
                       Version(dataclasses.replace(definitions[1], limits=dataclasses.replace(
                           definitions[1].limits, max_jobs=0)), None, Pool())), None)  # type: ignore[arg-type]
    assert bound(unbounded, Health()) == 0
    taken_out = Health()
    for _ in range(3):
        taken_out.record(definitions[0], failed=True)
    assert bound(agent, taken_out) == 2  # the version out of rotation takes no call: its bound not counted
    assert in_rotation(definitions, Health(), [False, True]) == [definitions[0]]  # nor one that cannot start
    assert in_rotation(definitions, taken_out, [False, True]) == list(definitions)  # none left: every version
    # stable (max_jobs 1) taken out with its one job running: the canary's two places are free, not one
    assert bounded(definitions, taken_out, [False, False], lambda d: {"stable": 1, "canary": 0}[d.version]) == (0, 2)


def bound(agent: Agent, health: Health) -> int:
    return max_jobs(in_rotation([v.definition for v in agent.versions], health, [False] * len(agent.versions)))


async def test_metadata_a_canarys_schema_refuses_goes_to_a_version_whose_schema_takes_it(tmp_path):
    """The canary's stricter schema refuses a call's metadata: the call runs on stable rather than being
    turned away; metadata every version refuses is refused."""
    import asyncio
    from types import SimpleNamespace

    from livekit.protocol import agent as agent_pb

    from host.config.credentials import Credentials
    from host.config.metadata import MetadataChecker
    from host.runtime.accepted import NoAgents
    from host.runtime.offers import OfferDesk
    from host.runtime.redispatch import Redispatch
    from host.tracing import HostTracing

    (tmp_path / "bot.yaml").write_text(
        "name: bot\nversion: stable\nweight: 1\nentrypoint: m:f\nmetadata: {schema: {type: object}}\n---\n"
        "name: bot\nversion: canary\nweight: 1000\nentrypoint: m:f\n"
        "metadata: {schema: {type: object, required: [tenant]}}\n---\n"
        "name: bot\nversion: old\nweight: 0\nentrypoint: m:f\n")  # rolled back from: takes anything, no call
    definitions = load([str(tmp_path)], check_imports=False).require_ok().agents

    class TakingPool(Pool):
        async def take(self) -> object:
            return object()

    agent = Agent(tuple(Version(d, MetadataChecker(d.metadata), TakingPool()) for d in definitions),  # type: ignore[arg-type]
                  None)  # type: ignore[arg-type]
    worker = SimpleNamespace(agent="bot", worker_id="AW_1")
    lookup = SimpleNamespace(serves=lambda w: agent, get=lambda name: agent, names=lambda: ["bot"])
    health = Health()
    desk = OfferDesk(Metrics(), HostTracing({}), health,
                     Redispatch(Credentials("ws://127.0.0.1:9", "k", "s" * 32), Metrics(), NoAgents, lambda: False),
                     lambda: lookup, lambda d: 0, lambda: False)  # type: ignore[arg-type,return-value]

    async def offer(room: str, metadata: dict[str, object] | str) -> tuple[object, object]:
        from livekit.protocol import models

        job = agent_pb.Job(id=f"AJ_{room}", dispatch_id="AD_1", room=models.Room(name=room),
                           metadata=json.dumps(metadata) if isinstance(metadata, dict) else metadata)
        return await desk.answer(worker, agent_pb.AvailabilityRequest(job=job))  # type: ignore[arg-type]

    with_tenant = [await offer(f"room-{n}", {"tenant": "acme"}) for n in range(3)]
    assert all(isinstance(a, Accept) and j.facts.version == "canary" for a, j in with_tenant)  # type: ignore[attr-defined]
    answer, job = await offer("room-x", {"user": "u"})
    assert isinstance(answer, Accept) and job.facts.version == "stable"  # type: ignore[attr-defined]
    answer, job = await offer("room-y", "[1, 2]")  # no schema of a version taking calls takes it
    assert isinstance(answer, Refuse) and answer.reason == "invalid_metadata" and job is None
    await asyncio.sleep(0)
