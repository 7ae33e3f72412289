"""The host's lifecycle: signals dispatched by name, drain, stop at once. The server is unreachable on
purpose: none of this needs one."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from livekit.protocol import agent as agent_pb

from host.config.credentials import Credentials
from host.config.loader import load
from host.runtime.host import Host, HostOptions

UNREACHABLE = Credentials("ws://127.0.0.1:9", "k", "s" * 32)


def catalog(tmp_path, body="processes: {idle: 0}\n"):
    (tmp_path / "mod.py").write_text("async def entrypoint(ctx):\n    pass\n")
    (tmp_path / "a.yaml").write_text(f"name: a\nentrypoint: mod.py:entrypoint\n{body}")
    return load([str(tmp_path)], check_imports=False).require_ok()


async def until(predicate, timeout=10.0):
    for _ in range(int(timeout * 20)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met")


async def test_sighup_reloads_and_sigterm_drains(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    host = Host(catalog(tmp_path), UNREACHABLE, HostOptions(paths=(str(tmp_path),), drain_timeout=5))
    run = asyncio.create_task(host.run())
    await until(lambda: host.agents.names() == ["a"])
    (tmp_path / "b.yaml").write_text("name: b\nentrypoint: mod.py:entrypoint\nprocesses: {idle: 0}\n")
    os.kill(os.getpid(), signal.SIGHUP)
    await until(lambda: "reload (SIGHUP): added b" in caplog.text)
    assert host.agents.names() == ["a", "b"]
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(run, 10)
    assert "SIGTERM: draining (up to 5s)" in caplog.text
    assert host.jobs.draining
    assert not host.view.status()["agents"]  # every agent closed


async def test_a_second_signal_stops_a_drain_that_waits_for_a_job(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    host = Host(catalog(tmp_path), UNREACHABLE, HostOptions(drain_timeout=60))
    run = asyncio.create_task(host.run())
    await until(lambda: host.agents.get("a") is not None)
    worker = host.agents.get("a").worker
    request = agent_pb.AvailabilityRequest(job=agent_pb.Job(id="AJ_1", room={"name": "r"}))
    await host.jobs.on_offer(worker, request)  # accepted, never assigned: the drain waits for it
    os.kill(os.getpid(), signal.SIGINT)
    await until(lambda: "SIGINT: draining" in caplog.text)
    await asyncio.sleep(0.3)
    assert not run.done()
    os.kill(os.getpid(), signal.SIGINT)
    await asyncio.wait_for(run, 10)
    assert "SIGINT again: stopping now" in caplog.text


async def test_reload_is_refused_while_draining(tmp_path, caplog):
    host = Host(catalog(tmp_path), UNREACHABLE, HostOptions(paths=(str(tmp_path),)))
    host.jobs.stop_taking()
    assert await host.reloader.reload("test") is False
    assert "reload (test) ignored: the host is draining" in caplog.text


async def test_a_drain_leaves_a_call_it_was_recovering_to_the_next_host(tmp_path, caplog):
    from host.runtime.journal import Entry, Journal

    caplog.set_level(logging.INFO)
    state = tmp_path / "state"
    lost = Entry("AJ_lost", "a", "r", "AD_1", "", "agent-AJ_lost", UNREACHABLE.url, 999_999_999, 1, 1.0)
    Journal(str(state)).add(lost)  # the row of a host that is gone (no such process)
    host = Host(catalog(tmp_path), UNREACHABLE, HostOptions(drain_timeout=30, state_dir=str(state)))
    run = asyncio.create_task(host.run())
    # taken from the journal; its recovery waits for the agent to be registered (the server cannot be reached)
    await until(lambda: "1 call(s) of a host that is gone found" in caplog.text)
    assert Journal(str(state)).orphans(UNREACHABLE.url, {"a"}) == []
    host.request_stop()
    await asyncio.wait_for(run, 10)
    assert "this host is draining, the call is left to the next host" in caplog.text
    assert Journal(str(state)).orphans(UNREACHABLE.url, {"a"}) == [lost]  # back for the next host


async def test_a_drain_lets_a_recovery_whose_dispatch_is_on_its_way_settle(tmp_path, caplog, monkeypatch,
                                                                            fake_server):
    from host.runtime import recovery
    from host.runtime.journal import Entry, Journal

    caplog.set_level(logging.INFO)
    answer = asyncio.Event()  # the server's answer to the dispatch: held back until the drain has begun

    async def answered_late() -> None:
        await answer.wait()
        await fake_server.joins()

    fake_server.on_dispatch = answered_late
    monkeypatch.setattr(recovery, "REGISTRATION_WAIT", 0)  # the server cannot be reached: no registration
    state = tmp_path / "state"
    lost = Entry("AJ_lost", "a", "r", "AD_1", "", "agent-AJ_lost", UNREACHABLE.url, 999_999_999, 1, 1.0)
    Journal(str(state)).add(lost)
    host = Host(catalog(tmp_path), UNREACHABLE, HostOptions(drain_timeout=30, state_dir=str(state)))
    run = asyncio.create_task(host.run())
    await until(lambda: fake_server.dispatched == ["a"])
    host.request_stop()
    await until(lambda: "draining: 1 recovery(ies) under way are let settle first" in caplog.text)
    assert not run.done()
    answer.set()
    await asyncio.wait_for(run, 10)
    assert "recovering the call of a host that is gone: dispatch AD_1" in caplog.text
    assert fake_server.dispatched == ["a"]
    assert Journal(str(state)).orphans(UNREACHABLE.url, {"a"}) == []  # settled: not left


async def test_answers_asked_to_be_favoured_where_the_host_may_not_is_said_at_start(tmp_path, caplog, monkeypatch):
    from host.runtime import host as host_module

    monkeypatch.setattr(host_module, "this_host_may_raise", lambda levels: levels == 0)
    Host(catalog(tmp_path), UNREACHABLE, HostOptions())  # the default asks nothing: nothing said
    assert "--answer-priority" not in caplog.text
    host = Host(catalog(tmp_path), UNREACHABLE, HostOptions(answer_priority=5))
    assert host.confinement.answer_levels == 5
    assert "--answer-priority 5: this host may not raise a process's priority" in caplog.text
