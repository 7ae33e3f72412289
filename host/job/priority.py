"""The template's priority: while it serves forks, it runs PRIORITY_BOOST nice levels above its job processes
where it may (root, CAP_SYS_NICE, or an RLIMIT_NICE that allows it), so that under a burst each fork does not
wait behind the jobs already connecting; each job process goes back to the nice value from before."""

from __future__ import annotations

import logging
import os
import resource

logger = logging.getLogger("agenthost.job")

PRIORITY_BOOST = 10  # nice levels the template runs above its job processes, where it may


def nice_values_to_try(before: int, levels: int, rlimit_nice: int) -> list[int]:
    """The nice values to try, best first, to run `levels` levels above `before`: that one (allowed with
    CAP_SYS_NICE), else as far as the soft RLIMIT_NICE allows (it counts 1, nice 19, to 40, nice -20)."""
    wanted = max(before - levels, -20)
    floor = -20 if rlimit_nice == resource.RLIM_INFINITY else 20 - rlimit_nice
    return [n for n in dict.fromkeys((wanted, max(wanted, floor))) if n < before]


def raise_priority(levels: int) -> int:
    """Run this process up to `levels` nice levels above where it is, as far as it may; its nice value before,
    which each process it forks goes back to."""
    before = os.getpriority(os.PRIO_PROCESS, 0)
    for nice in nice_values_to_try(before, levels, resource.getrlimit(resource.RLIMIT_NICE)[0]):
        try:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
        except OSError:
            continue
        logger.debug("the template runs at nice %d, its job processes at %d", nice, before)
        return before
    logger.debug("the template runs at its job processes' nice value, %d (it may not raise its priority)", before)
    return before
