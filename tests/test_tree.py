"""A process's descendants, found and ended together (host.tree), on real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from host.tree import alive, descendants, end_all, kill_tree

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def stubborn(ready) -> list[str]:
    """A process that ignores SIGTERM, and says so by creating `ready`."""
    return [sys.executable, "-c", "import pathlib, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "pathlib.Path(sys.argv[1]).touch(); time.sleep(60)", str(ready)]


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_descendants_include_grandchildren_and_end_all_kills_those_that_ignore_sigterm(tmp_path):
    # a child that starts a grandchild in a session of its own, and waits
    ready = tmp_path / "ready"
    parent = subprocess.Popen([sys.executable, "-c", f"import subprocess; p = subprocess.Popen({stubborn(ready)!r}, "
                               "start_new_session=True); p.wait()"])
    try:
        wait_for(lambda: len(descendants(parent.pid)) == 1)
        [grandchild] = descendants(parent.pid)
        assert grandchild in descendants(os.getpid()) and parent.pid in descendants(os.getpid())
        wait_for(ready.exists)  # its SIGTERM handler in place
        killed = end_all([grandchild], grace=0.3)
        assert killed == [grandchild]  # it ignored SIGTERM: killed after the grace
        wait_for(lambda: not alive(grandchild))
    finally:
        parent.kill()
        parent.wait()


def test_kill_tree_stops_the_root_first_and_kills_everything_below():
    root = subprocess.Popen([sys.executable, "-c", f"import subprocess, time; subprocess.Popen({SLEEPER!r}); "
                             f"subprocess.Popen({SLEEPER!r}); time.sleep(60)"])
    wait_for(lambda: len(descendants(root.pid)) == 2)
    below = descendants(root.pid)
    assert sorted(kill_tree(root.pid)) == sorted(below)
    root.wait(timeout=10)
    wait_for(lambda: not any(alive(p) for p in below))
    assert not alive(root.pid)
