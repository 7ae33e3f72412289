"""Which version of an agent a job gets (pure), and which versions fail too often to get any."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter

from host.config.definitions import (
    AgentDefinition,
    FunctionRef,
    Limits,
    MetadataPolicy,
    ParticipantTemplate,
    Processes,
    ShutdownPolicy,
    TakeOut,
)
from host.runtime.versions import Health, Weighted, choose, pick, routing_value

DEFAULT_TAKE_OUT = TakeOut()


def version(v: str, weight: int, route_by: str | None = None, take_out: TakeOut = DEFAULT_TAKE_OUT) -> AgentDefinition:
    return AgentDefinition(
        name="support", file=f"{v}.yaml", line=1, enabled=True,
        entrypoint=FunctionRef("m:f", "m", None, "f"), setup=None, dispatch="explicit", job_type="room",
        auto_subscribe="subscribe_all", metadata=MetadataPolicy(None, None, False),
        participant=ParticipantTemplate("agent-{job_id}", "support", "", ()),
        shutdown=ShutdownPolicy("participants_left", True, 10.0, False), limits=Limits(0, 1000, 0),
        processes=Processes(1, 10.0), version=v, weight=weight, route_by=route_by, take_out=take_out)


def test_the_split_follows_the_weights():
    versions = [Weighted("stable", 90), Weighted("canary", 10)]
    got = Counter(choose(versions, f"room={n}") for n in range(5000))
    assert 0.08 < got["canary"] / 5000 < 0.12 and got["stable"] + got["canary"] == 5000


def test_a_room_always_gets_the_same_version_while_the_weights_hold():
    versions = [Weighted("a", 1), Weighted("b", 1), Weighted("c", 2)]
    first = [choose(versions, f"room={n}") for n in range(200)]
    assert first == [choose(list(reversed(versions)), f"room={n}") for n in range(200)]  # order does not matter
    assert choose([Weighted("a", 0), Weighted("b", 0)], "room=x") is None
    assert {choose([Weighted("a", 0), Weighted("b", 3)], f"room={n}") for n in range(50)} == {"b"}


def test_route_by_picks_by_a_metadata_field_and_falls_back_to_the_room():
    assert routing_value("tenant", json.dumps({"tenant": "acme", "x": 1}), "r1") == 'tenant="acme"'
    assert routing_value("tenant", json.dumps({"x": 1}), "r1") == "room=r1"
    assert routing_value("tenant", "not json", "r1") == "room=r1"
    assert routing_value(None, json.dumps({"tenant": "acme"}), "r1") == "room=r1"
    defs = [version("a", 1, "tenant"), version("b", 1, "tenant")]
    chosen = {pick(defs, Health(), f"room-{n}", json.dumps({"tenant": "acme"})).version for n in range(50)}
    assert len(chosen) == 1  # every room of one tenant: one version


def test_a_failing_version_is_taken_out_until_the_next_reload():
    canary = version("canary", 50, take_out=TakeOut(failures=3, of_last=5))
    stable = version("stable", 50)
    health = Health()
    assert [health.record(canary, failed=f) for f in (True, False, True)] == [False, False, False]
    assert health.record(canary, failed=True) is True and health.is_out(canary)
    assert {pick([canary, stable], health, f"r{n}", "").version for n in range(100)} == {"stable"}
    fixed = dataclasses.replace(canary, entrypoint=FunctionRef("m:fixed", "m", None, "fixed"))
    assert not health.is_out(fixed) and health.failures(fixed) == 0  # a definition changed: back in
    health.reloaded()  # a reload, whatever it changed (the fix may be in the code alone)
    assert not health.is_out(canary) and health.failures(canary) == 0
    assert [health.record(canary, failed=True) for _ in range(3)] == [False, False, True]  # still failing: out
    # with every version out, a caller still gets one, by weight alone
    health.record(stable, failed=True)
    out_too = Health()
    for d in (canary, stable):
        for _ in range(3):
            out_too.record(d, failed=True)
    assert pick([canary, stable], out_too, "r1", "").version in ("canary", "stable")


def test_a_call_started_again_avoids_the_version_it_failed_on():
    a, b = version("a", 1), version("b", 1)
    for n in range(50):
        assert pick([a, b], Health(), f"r{n}", "", avoid="a").version == "b"
    # promoted: the version rolled back from (weight 0) takes the call rather than the one failing again
    stable, promoted = version("stable", 0), version("promoted", 100, take_out=TakeOut(failures=1, of_last=5))
    for n in range(50):
        assert pick([stable, promoted], Health(), f"r{n}", "", avoid="promoted").version == "stable"
    health = Health()
    health.record(promoted, failed=True)
    assert {pick([stable, promoted], health, f"r{n}", "").version for n in range(50)} == {"stable"}
    assert pick([version("only", 1)], Health(), "r", "").version == "only"
