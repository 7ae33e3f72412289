"""The priorities the host sets: the nice values it tries for a template, best first (their effect on a real
template: tests/process/test_template.py), and a voice job favoured while its call waits for an answer, in a real
process."""

import asyncio
import os
import resource
import subprocess
import sys

import pytest

from host.process import priority
from host.process.priority import PRIORITY_BOOST, AnswerBoost, may_raise, nice_values_to_try, this_host_may_raise


@pytest.mark.parametrize(("before", "rlimit", "expected"), [
    (0, 0, [-10]),  # the default limit: only CAP_SYS_NICE allows it
    (0, 25, [-10, -5]),  # a limit that allows part of it
    (0, 30, [-10]),
    (0, resource.RLIM_INFINITY, [-10]),
    (5, 0, [-5]),
    (-15, 40, [-20]),  # not below -20 (the kernel clamps it; one try is enough)
])
def test_the_template_tries_its_boost_then_what_its_nice_limit_allows(before, rlimit, expected):
    assert nice_values_to_try(before, PRIORITY_BOOST, rlimit) == expected


@pytest.mark.parametrize(("levels", "cap", "rlimit", "base", "expected"), [
    (0, False, 0, 0, True),  # nothing asked
    (5, True, 0, 0, True),  # root with CAP_SYS_NICE
    (5, False, 0, 0, False),  # a user, or root without it (a container's)
    (5, False, 25, 0, True),  # LimitNICE=-5
    (5, False, 24, 0, False),
    (5, False, resource.RLIM_INFINITY, 0, True),
    (5, False, 40, -18, True),  # not below -20
])
def test_whether_the_host_may_favour_answers(levels, cap, rlimit, base, expected):
    assert may_raise(levels, cap, rlimit, base) is expected


LEVELS = 5  # as `--answer-priority 5` sets

CHILD = """
import sys, threading, time
threads = [threading.Thread(target=time.sleep, args=(60,), daemon=True) for _ in range(3)]
for t in threads:
    t.start()
print("ready", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def child():
    """A process with four threads (an rtc library's, an executor's), as a job process has."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    yield proc.pid
    proc.kill()
    proc.wait()


def nice_of_threads(pid: int) -> list[int]:
    return sorted({os.getpriority(os.PRIO_PROCESS, int(t)) for t in os.listdir(f"/proc/{pid}/task")})


@pytest.mark.skipif(not this_host_may_raise(LEVELS),
                    reason="root with CAP_SYS_NICE, or an RLIMIT_NICE that lets the host raise a priority")
async def test_a_job_waiting_for_its_answer_is_favoured_on_every_thread_until_it_is_answered(child, monkeypatch):
    monkeypatch.setattr(priority, "LONGEST_S", 0.3)
    base = os.getpriority(os.PRIO_PROCESS, 0)
    boost = AnswerBoost(LEVELS)
    boost.waiting(child, True)
    assert nice_of_threads(child) == [max(-20, base - LEVELS)]
    boost.waiting(child, False)
    assert nice_of_threads(child) == [base]
    boost.waiting(child, True)  # at once again: not within MIN_GAP_S of the last (a job saying it over and over)
    assert nice_of_threads(child) == [base] and not boost.favoured
    monkeypatch.setattr(priority, "MIN_GAP_S", 0.0)
    boost.waiting(child, True)  # and never longer than LONGEST_S, whatever the job says
    assert nice_of_threads(child) == [max(-20, base - LEVELS)]
    for _ in range(100):
        if not boost.favoured:
            break
        await asyncio.sleep(0.05)
    assert nice_of_threads(child) == [base] and not boost.favoured
    boost.close()  # the process ended: what it said last, read after, sets nothing
    boost.waiting(child, True)
    assert nice_of_threads(child) == [base] and not boost.favoured


async def test_a_host_that_favours_no_answer_leaves_its_jobs_as_they_run(child):
    base = os.getpriority(os.PRIO_PROCESS, 0)
    boost = AnswerBoost(0)
    boost.waiting(child, True)
    assert nice_of_threads(child) == [base] and not boost.favoured
