"""Deciding offers, as a pure function."""

from __future__ import annotations

from host.config.metadata import MetadataChecker
from host.runtime.admission import Accept, AgentState, Decline, Offer, Refuse, admit


def state(definition, running=0):
    return AgentState(definition, MetadataChecker(definition.metadata), running)


def test_accepts_with_the_participant_rendered_for_the_job(make_agent):
    d = make_agent("participant: {identity: 'bot-{room}', name: '{agent} for {job_id}', metadata: m,"
                   " attributes: {team: blue}}\n")
    answer = admit(Offer("AJ_1", "lobby", '{"x": 1}'), state(d), draining=False)
    assert answer == Accept(identity="bot-lobby", name="a for AJ_1", participant_metadata="m",
                            attributes={"team": "blue"}, metadata={"x": 1})


def test_declines_while_draining_before_anything_else(make_agent):
    d = make_agent("limits: {max_jobs: 1}\nmetadata: {required: true}\n")
    assert admit(Offer("AJ_1", "r", ""), state(d, running=5), draining=True) == Decline("draining",
                                                                                         "host is draining")


def test_declines_for_a_removed_agent():
    answer = admit(Offer("AJ_1", "r", ""), None, draining=False)
    assert isinstance(answer, Decline) and answer.reason == "removed"


def test_declines_at_max_jobs_and_accepts_below(make_agent):
    d = make_agent("limits: {max_jobs: 2}\n")
    assert admit(Offer("AJ_1", "r", ""), state(d, running=2), draining=False) == Decline("max_jobs",
                                                                                         "at max_jobs (2)")
    assert isinstance(admit(Offer("AJ_1", "r", ""), state(d, running=1), draining=False), Accept)


def test_no_max_jobs_means_no_limit(make_agent):
    assert isinstance(admit(Offer("AJ_1", "r", ""), state(make_agent(), running=10_000), draining=False), Accept)


def test_refuses_invalid_or_missing_metadata_naming_the_rule(make_agent):
    d = make_agent("metadata:\n  required: true\n  schema: {type: object, required: [user_id]}\n")
    missing = admit(Offer("AJ_1", "r", ""), state(d), draining=False)
    assert missing == Refuse("invalid_metadata", "invalid metadata: $: metadata is required but the job has none")
    wrong = admit(Offer("AJ_1", "r", '{"name": "x"}'), state(d), draining=False)
    assert isinstance(wrong, Refuse) and "'user_id' is a required property" in wrong.message
    ok = admit(Offer("AJ_1", "r", '{"user_id": "u"}'), state(d), draining=False)
    assert isinstance(ok, Accept) and ok.metadata == {"user_id": "u"}


def test_declines_while_the_agent_cannot_start_processes(make_agent):
    d = make_agent()
    answer = admit(Offer("AJ_1", "r", ""), AgentState(d, MetadataChecker(d.metadata), 0, "ImportError: x"),
                   draining=False)
    assert answer == Decline("no_process", "cannot start job processes: ImportError: x")
