"""A process's own memory, as /proc tells it: the pages that are its alone (USS: private pages, clean or
dirty) and its share of swap, from /proc/PID/smaps_rollup. Read by the host for each job process it may read,
and by a job process for itself where the host may not (a host run as a user: its job processes are not
dumpable, and so their smaps are root's only)."""

from __future__ import annotations

_PRIVATE = (b"Private_Clean:", b"Private_Dirty:", b"SwapPss:")


def own_pages(pid: int | str = "self") -> int | None:
    """The pages of process `pid` (this process by default) that are its alone, and its share of swap, in
    bytes; None when they cannot be read (it is gone, or is not dumpable and this process may not read it, or
    the kernel has no smaps_rollup)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            text = fh.read()
    except OSError:
        return None
    total = 0
    for line in text.splitlines():
        if line.startswith(_PRIVATE):
            total += int(line.split()[1]) * 1024
    return total
