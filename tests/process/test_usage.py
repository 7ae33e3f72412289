"""A process's CPU time as the host reads it where no cgroup counts it."""

import subprocess
import sys

from host.process.usage import process_cpu_seconds, tree_cpu_seconds, used_so_far

BURN = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"


class Group:
    def cpu_seconds(self) -> float:
        return 7.5


def test_what_a_child_burned_counts_for_its_parent_once_reaped_and_a_gone_process_is_none():
    parent = subprocess.Popen([sys.executable, "-c", f"import subprocess, sys\nsubprocess.run([sys.executable, "
                                                     f"'-c', {BURN!r}])\nimport time; time.sleep(60)"])
    try:
        def reaped_child_counted() -> bool:
            seconds = process_cpu_seconds(parent.pid)
            return seconds is not None and seconds >= 0.3
        for _ in range(600):  # the child burns 0.3 s, then its parent reaps it and sleeps
            if reaped_child_counted():
                break
            subprocess.run(["sleep", "0.05"], check=True)
        assert reaped_child_counted()
        tree = tree_cpu_seconds(parent.pid)
        assert tree is not None and tree >= 0.3
        assert (used_so_far(None, parent.pid) or 0.0) >= 0.3  # without a cgroup: the process and what it reaped
    finally:
        parent.kill()
        parent.wait()
    assert process_cpu_seconds(parent.pid) is None and tree_cpu_seconds(parent.pid) is None
    assert used_so_far(None, None) is None
    assert used_so_far(Group(), parent.pid) == 7.5  # type: ignore[arg-type]  # its cgroup's count, where it has one
