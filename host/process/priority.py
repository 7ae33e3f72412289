"""The CPU priority of the processes the host starts, set by the host: processes running agent code may not
raise their own (they give up CAP_SYS_NICE, host.sandbox: a real-time priority taken by agent code would
starve the host).

- A template, while it serves forks, runs PRIORITY_BOOST nice levels above its job processes, so that under a
  burst each fork does not wait behind the jobs already connecting; each job process goes back to the nice
  value from before (the host's) before it runs anything.
- A voice call's answer first (off unless asked): from the moment its caller stops speaking until its agent
  starts answering (the job process says so: Answering), the job process runs `--answer-priority` levels above
  the other job processes, for LONGEST_S at most, at most once per MIN_GAP_S. The idea: on a machine busy with
  calls, a turn's latency (end of speech to the agent's first audio) is partly the time the answering process
  waits for a CPU behind calls that are only listening. On this 2-core machine no gain in calls per machine
  could be told from run-to-run noise (docs/voice.md), hence off by default.

Both where the host may: root with CAP_SYS_NICE, or an RLIMIT_NICE that allows it; else the processes run as
the host does. Every process running agent code may take a nice value at most that many levels below the
host's by itself (host.sandbox.hold_priority: where the host has no CAP_SYS_NICE, the target's RLIMIT_NICE is
what lets it raise the process), so a job claiming to wait for an answer all the time, or a process it starts
while favoured, gains those levels and no more; a job in a CPU group of its own (`limits.cpu_limit`, or every
job on cgroup v2 once CPU groups are on) is weighed by its group, whatever its threads' nice values.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource

from host.job.answer_priority import ANSWER_BOOST
from host.sandbox import CAP_SYS_NICE, PRIORITY_BOOST, has_capability, nice_floor

logger = logging.getLogger("agenthost.process")

__all__ = ["ANSWER_BOOST", "PRIORITY_BOOST", "AnswerBoost", "favour", "nice_values_to_try"]

LONGEST_S = 3.0  # seconds an answer is favoured at most
MIN_GAP_S = 0.5  # seconds from one favour to the next at least: a job saying it over and over costs the host little


def nice_values_to_try(before: int, levels: int, rlimit_nice: int) -> list[int]:
    """The nice values to try, best first, to run `levels` levels above `before`: that one (allowed with
    CAP_SYS_NICE), else as far as the soft RLIMIT_NICE allows (it counts 1, nice 19, to 40, nice -20)."""
    wanted = max(before - levels, -20)
    floor = nice_floor(rlimit_nice)
    return [n for n in dict.fromkeys((wanted, max(wanted, floor))) if n < before]


def may_raise(levels: int, cap_sys_nice: bool, rlimit_nice: int, base: int) -> bool:
    """Whether a host at nice `base` may run a process `levels` above itself: with CAP_SYS_NICE, or an
    RLIMIT_NICE (which the process inherits from the host) that allows it."""
    return levels <= 0 or cap_sys_nice or nice_floor(rlimit_nice) <= max(base - levels, -20)


def this_host_may_raise(levels: int) -> bool:
    """`may_raise` for this process, as it runs."""
    return may_raise(levels, has_capability(CAP_SYS_NICE), resource.getrlimit(resource.RLIMIT_NICE)[0],
                     os.getpriority(os.PRIO_PROCESS, 0))


def threads_of(pid: int) -> list[int]:
    try:
        return [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
    except (OSError, ValueError):
        return [pid]


def set_nice(pid: int, nice: int) -> bool:
    """Every thread of `pid` at `nice` (a thread starts at its creator's: each is set); False if not allowed."""
    for tid in threads_of(pid):
        try:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        except ProcessLookupError:
            continue  # a thread (or the process) that ended meanwhile
        except OSError:
            return False
    return True


def favour(pid: int, levels: int, base: int) -> int | None:
    """Run process `pid` up to `levels` nice levels above `base`, as far as the host may; the nice value it
    runs at, or None when it may not be raised at all."""
    for nice in nice_values_to_try(base, levels, resource.getrlimit(resource.RLIMIT_NICE)[0]):
        if set_nice(pid, nice):
            return nice
    set_nice(pid, base)  # threads set before a refusal
    return None


class AnswerBoost:
    """One job process's favour while its call waits for an answer: set on the process's word (Answering),
    taken back on its word, after LONGEST_S, or when it ends. Written by its handle alone."""

    def __init__(self, levels: int, base: int | None = None) -> None:
        self.levels = levels
        self.base = os.getpriority(os.PRIO_PROCESS, 0) if base is None else base  # the host's: the job's
        self.favoured = False
        self.closed = False
        self._since = -MIN_GAP_S  # when the last favour began (monotonic)
        self._later: asyncio.TimerHandle | None = None

    def waiting(self, pid: int, waiting: bool) -> None:
        if self.closed:
            return  # said after its end (read from its pipe once it had exited): its pid may be another's
        loop = asyncio.get_running_loop()
        if waiting and not self.favoured and self.levels > 0 and loop.time() - self._since >= MIN_GAP_S:
            if favour(pid, self.levels, self.base) is None:
                self.levels = 0  # not allowed here: never tried again for this process
                logger.debug("process %d: answers cannot be favoured (the host may not raise a priority)", pid)
                return
            self.favoured, self._since = True, loop.time()
            self._later = loop.call_later(LONGEST_S, self.waiting, pid, False)
        elif not waiting and self.favoured:
            self._take_back()
            set_nice(pid, self.base)

    def close(self) -> None:
        """The process ended: nothing more is set on its pid, and no timer is left behind."""
        self.closed = True
        self._take_back()

    def _take_back(self) -> None:
        self.favoured = False
        if self._later is not None:
            self._later.cancel()
            self._later = None

