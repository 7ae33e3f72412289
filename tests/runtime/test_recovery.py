import asyncio
from dataclasses import replace

import pytest

from host.config.credentials import Credentials
from host.config.definitions import Recovery
from host.config.loader import load
from host.runtime.journal import Entry
from host.runtime.recovery import CRASH, InRoom, crash_backoff, verdict

ENTRY = Entry("AJ_1", "a", "r", "AD_1", "", "agent-AJ_1", "ws://s", 1, 1, 1.0)
UNREACHABLE = Credentials("ws://127.0.0.1:9", "k", "s" * 32)


def definition(tmp_path):
    (tmp_path / "a.yaml").write_text("name: a\nentrypoint: m:f\n")
    return load([str(tmp_path)], check_imports=False).require_ok().agents[0]


def test_a_call_gets_its_agent_again_only_if_it_still_has_a_caller_and_no_other_agent(tmp_path):
    d = definition(tmp_path)
    caller = InRoom("user", False, True)
    old, other = InRoom("agent-AJ_1", True, False), InRoom("agent-AJ_9", True, False)
    assert verdict(ENTRY, d, [caller]).dispatch
    assert verdict(ENTRY, d, [caller, old]).remove == ("agent-AJ_1",)  # its orphan is still there: removed
    assert verdict(ENTRY, d, None).reason == "the room is gone"
    assert verdict(ENTRY, d, [old]).reason == "no caller is left in the room"
    recorder = InRoom("EG_1", False, caller=False)  # an egress is no caller
    assert verdict(ENTRY, d, [recorder]).reason == "no caller is left in the room"
    assert verdict(ENTRY, d, [caller, other]).reason == "the agent is in the room again: agent-AJ_9"
    assert verdict(ENTRY, None, [caller]).reason == "its agent is no longer served here"
    off = replace(d, recovery=Recovery(on_host_loss="off"))
    assert verdict(ENTRY, off, [caller]).reason == "recovery.on_host_loss is off"
    assert not verdict(replace(ENTRY, attempt=3), d, [caller]).dispatch
    assert verdict(replace(ENTRY, attempt=2), d, [caller]).dispatch


def test_a_crashed_call_is_taken_up_again_only_when_its_agent_says_so_with_a_doubling_bounded_backoff(tmp_path):
    d = definition(tmp_path)
    caller = InRoom("user", False, True)
    assert crash_backoff(d, 0) is None  # off by default
    assert verdict(ENTRY, d, [caller], CRASH).reason == "recovery.on_crash is off"
    on = replace(d, recovery=Recovery(on_crash="redispatch", on_host_loss="off", crash_backoff=0.5, max_attempts=2))
    assert [crash_backoff(on, a) for a in (0, 1, 2, 10, 10_000)] == [0.5, 1.0, 2.0, 30.0, 30.0]
    decided = verdict(ENTRY, on, [caller, InRoom("agent-AJ_1", True, False)], CRASH)
    assert decided.dispatch and decided.reason == "its job process died" and decided.remove == ("agent-AJ_1",)
    assert verdict(ENTRY, on, [caller]).reason == "recovery.on_host_loss is off"  # each cause its own switch
    assert verdict(replace(ENTRY, attempt=2), on, [caller], CRASH).reason == \
        "given its agent again 2 time(s) already (recovery.max_attempts)"  # one bound for both causes
    assert verdict(ENTRY, on, [caller, InRoom("agent-AJ_2", True, False)], CRASH).reason == \
        "the agent is in the room again: agent-AJ_2"


def test_other_agents_in_the_room_do_not_keep_a_call_from_getting_its_own_back(tmp_path):
    d = definition(tmp_path)
    caller = InRoom("user", False, True)
    helper = InRoom("agent-AJ_7", True, False, agent_name="helper")  # another agent serving the same call
    again = InRoom("agent-AJ_8", True, False, agent_name="a")  # this agent, dispatched again (another host)
    assert helper.serves("helper") and not helper.serves("a")
    assert verdict(ENTRY, d, [caller, helper]).dispatch
    assert verdict(ENTRY, d, [caller, helper, again]).reason == "the agent is in the room again: agent-AJ_8"
    unnamed = InRoom("agent-AJ_9", True, False)  # a server that does not name its agents: it may be this one
    assert verdict(ENTRY, d, [caller, unnamed]).reason == "the agent is in the room again: agent-AJ_9"


def test_the_crash_policy_is_read_from_the_agent_file(tmp_path):
    (tmp_path / "a.yaml").write_text("name: a\nentrypoint: m:f\n"
                                     "recovery: {on_crash: redispatch, crash_backoff: 250ms, max_attempts: 5}\n")
    d = load([str(tmp_path)], check_imports=False).require_ok().agents[0]
    assert d.recovery == Recovery(on_host_loss="redispatch", on_crash="redispatch", crash_backoff=0.25,
                                  max_attempts=5)
    (tmp_path / "a.yaml").write_text("name: a\nentrypoint: m:f\nrecovery: {on_crash: always}\n")
    report = load([str(tmp_path)], check_imports=False)
    assert not report.ok and "on_crash" in str(report.problems[0])


@pytest.fixture
def recovering(tmp_path, fake_server):
    """A fake server the recoveries talk to, and the host's agents: `a`, registered."""
    d = definition(tmp_path)

    class Agents:
        def get(self, name):
            return type("Agent", (), {"definition": d, "worker": type("W", (), {"registered": True})()})()

    return fake_server, Agents()


async def nothing_expected(*_args):
    pass


async def test_a_recovery_stops_when_its_host_no_longer_holds_the_call_and_one_calls_recoveries_run_in_turn(
        recovering):
    from host.ops.metrics import Metrics
    from host.runtime.recovery import Recoverer

    server, agents = recovering
    recoverer = Recoverer(UNREACHABLE, nothing_expected, Metrics(), None)

    async def not_held() -> bool:
        return False

    assert await recoverer.recover(ENTRY, agents, holds=not_held)  # taken over elsewhere: settled, not sent
    assert server.dispatched == []
    # two rows of one call (the lost job, and the job that was recovering it): one agent comes back, not two
    again = replace(ENTRY, job_id="AJ_2", identity="agent-AJ_2", recovery_of="AJ_1")
    assert all(await asyncio.gather(recoverer.recover(ENTRY, agents), recoverer.recover(again, agents)))
    assert server.dispatched == ["a"]


async def test_a_draining_host_leaves_a_call_to_the_next_host_unless_its_dispatch_is_on_its_way(recovering,
                                                                                                 monkeypatch):
    from host.ops.metrics import Metrics
    from host.runtime import recovery
    from host.runtime.recovery import Recoverer

    server, agents = recovering
    taken = []  # whether a worker took each dispatch, as the server says when asked
    leaving: list[bool] = []

    async def nobody_takes_it() -> None:  # no agent comes
        leaving.append(True)  # the host starts draining while the dispatch is on its way

    async def was_taken(self, client, room, dispatch_id):
        return bool(taken and taken[-1])

    server.on_dispatch = nobody_takes_it
    monkeypatch.setattr(recovery, "CONFIRM_WAIT", 0.3)
    monkeypatch.setattr(Recoverer, "_taken", was_taken)
    put_back: list[Entry] = []
    recoverer = Recoverer(UNREACHABLE, nothing_expected, Metrics(), put_back.append, leaving=lambda: bool(leaving))
    # its dispatch was not taken and the host now drains: the call goes back, for the next host
    assert not await recoverer.recover(ENTRY, agents)
    assert server.dispatched == ["a"] and put_back == [ENTRY]
    # already draining: nothing is dispatched, the call goes back at once
    assert not await recoverer.recover(ENTRY, agents)
    assert server.dispatched == ["a"] and put_back == [ENTRY, ENTRY]
    # a dispatch a worker took is on its way: settled, not left to the next host (it would bring a second agent)
    leaving.clear()
    taken.append(True)
    assert await recoverer.recover(ENTRY, agents)
    assert server.dispatched == ["a", "a"] and put_back == [ENTRY, ENTRY]


async def test_a_recovery_cut_off_as_its_host_stops_is_put_back_for_the_next_host(recovering, caplog):
    from host.ops.metrics import Metrics
    from host.runtime.recovery import Recoverer

    server, agents = recovering
    sent = asyncio.Event()

    async def no_answer() -> None:  # the server's answer to the dispatch never comes
        sent.set()
        await asyncio.Event().wait()

    server.on_dispatch = no_answer
    put_back: list[Entry] = []
    handed: list[Entry] = []
    recoverer = Recoverer(UNREACHABLE, nothing_expected, Metrics(), put_back.append, hand_over=handed.append)
    task = asyncio.ensure_future(recoverer.recover(ENTRY, agents))
    await asyncio.wait_for(sent.wait(), 10)
    task.cancel()  # the host stops: its drain timed out, or a second signal came
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled() and put_back == [ENTRY] and handed == []
    assert "the host stopped before its recovery settled, the call is left to the next host" in caplog.text
