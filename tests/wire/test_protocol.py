"""What the host accepts from its processes: the messages of the protocol, field by field, and nothing else."""

import json
import os
import pickle

import pytest

from host.wire.messages import (
    Answering,
    Exited,
    Forked,
    ForkFailed,
    InitFailed,
    JobDone,
    JobStarted,
    JobVitals,
    NotForkSafe,
    Ready,
    ShuttingDown,
    TemplateReady,
    pack_exited,
    pack_forked,
)
from host.wire.protocol import MAX_TEXT, ProtocolError, decode_job, decode_template, encode, fds_after


class Exploit:
    """What agent code sent to run code in the host through pickle."""

    def __reduce__(self):
        return (os.system, ("touch /tmp/agenthost-pwned",))


JOB_MESSAGES = [Ready(12, {"/srv/a.py": (1, 2)}, 0.25), InitFailed("ImportError: x"), JobStarted(1.5e9),
                JobVitals(12.5, 3), Answering(True), Answering(False),
                ShuttingDown("participants_left"), JobDone(None), JobDone("ValueError: y")]
TEMPLATE_MESSAGES = [TemplateReady(7, {}), NotForkSafe("threads"), InitFailed("e"), ForkFailed("no memory")]


@pytest.mark.parametrize("msg", JOB_MESSAGES)
def test_every_job_message_reads_back(msg):
    assert decode_job(encode(msg)) == msg


@pytest.mark.parametrize("msg", TEMPLATE_MESSAGES)
def test_every_template_message_reads_back(msg):
    assert decode_template(encode(msg)) == msg


def test_forked_and_exited_come_packed():
    assert decode_template(pack_forked(9)[4:]) == Forked(9)
    assert decode_template(pack_exited(9, -9)[4:]) == Exited(9, -9)
    assert fds_after(Forked(9)) == 2 and fds_after(Exited(9, 0)) == 0


def test_a_pickle_is_not_a_message_and_runs_nothing():
    with pytest.raises(ProtocolError, match="not a message"):
        decode_job(pickle.dumps(Exploit()))
    with pytest.raises(ProtocolError, match="not a message"):
        decode_template(pickle.dumps(Ready(1, {})))
    assert not os.path.exists("/tmp/agenthost-pwned")


@pytest.mark.parametrize(("body", "error"), [
    ({"v": 2, "type": "JobDone", "error": None}, "not a message of version 1"),
    ({"v": 1, "type": "Popen", "args": ["sh"]}, "unknown message type 'Popen'"),
    ({"v": 1, "type": "JobDone"}, "JobDone without error"),
    ({"v": 1, "type": "JobDone", "error": 3}, r"JobDone.error is not str \| None"),
    ({"v": 1, "type": "Ready", "pid": "1", "sources": {}, "prewarm_cpu": 0}, "Ready.pid is not int"),
    ({"v": 1, "type": "Ready", "pid": True, "sources": {}, "prewarm_cpu": 0}, "Ready.pid is not int"),
    ({"v": 1, "type": "Ready", "pid": 1, "sources": {"a": [1]}, "prewarm_cpu": 0}, "Ready.sources is not"),
    ({"v": 1, "type": "JobDone", "error": None, "cpu_seconds": 0.0, "peak_rss_bytes": 0, "spans_dropped": 0,
      "extra": 1}, "JobDone with unknown fields"),
    ({"v": 1, "type": "JobDone", "error": None}, "JobDone without cpu_seconds"),
    ([1, 2], "not a message of version 1"),
    # JSON's integers have no bound: one of 400 digits overflows a float, one of 30 an int64
    ({"v": 1, "type": "JobVitals", "loop_lag_ms": 10**400, "participants": 1, "spans_dropped": 0},
     "JobVitals.loop_lag_ms is not float"),
    ({"v": 1, "type": "JobVitals", "loop_lag_ms": 1.0, "participants": 10**30, "spans_dropped": 0},
     "JobVitals.participants is not int"),
    ({"v": 1, "type": "Ready", "pid": 1, "sources": {"a": [1, -10**20]}, "prewarm_cpu": 0}, "Ready.sources is not"),
    ({"v": 1, "type": "Answering", "waiting": 1}, "Answering.waiting is not bool"),
])
def test_anything_else_is_refused_by_name(body, error):
    with pytest.raises(ProtocolError, match=error):
        decode_job(json.dumps(body).encode())


def test_a_message_from_the_other_kind_of_process_is_refused():
    with pytest.raises(ProtocolError, match="TemplateReady is not a job process's message"):
        decode_job(encode(TemplateReady(1, {})))
    with pytest.raises(ProtocolError, match="JobStarted is not a template's message"):
        decode_template(encode(JobStarted(1.0)))


def test_deep_nesting_is_refused_not_a_crash():
    with pytest.raises(ProtocolError):
        decode_job(b"[" * 100_000 + b"]" * 100_000)


def test_long_texts_are_cut():
    msg = decode_job(encode(InitFailed("x" * 1_000_000)))
    assert isinstance(msg, InitFailed) and len(msg.error) < MAX_TEXT + 50
