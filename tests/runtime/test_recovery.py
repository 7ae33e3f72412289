from dataclasses import replace

from host.config.definitions import Recovery
from host.config.loader import load
from host.runtime.journal import Entry
from host.runtime.recovery import InRoom, verdict

ENTRY = Entry("AJ_1", "a", "r", "AD_1", "", "agent-AJ_1", "ws://s", 1, 1, 1.0)


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
    assert verdict(ENTRY, d, [caller, other]).reason == "another agent is in the room: agent-AJ_9"
    assert verdict(ENTRY, None, [caller]).reason == "its agent is no longer served here"
    off = replace(d, recovery=Recovery(on_host_loss="off"))
    assert verdict(ENTRY, off, [caller]).reason == "recovery.on_host_loss is off"
    assert not verdict(replace(ENTRY, attempt=3), d, [caller]).dispatch
    assert verdict(replace(ENTRY, attempt=2), d, [caller]).dispatch
