"""Which confinement a host uses, found once at start: cgroup v2 or v1 where one can be created, else rlimits."""

import os

import pytest

from host.process.cgroupfs import CgroupError
from host.process.detect import detect


def test_rlimit_is_asked_for_or_forced_where_nothing_else_is():
    assert detect("rlimit").mode == "rlimit"
    with pytest.raises(CgroupError, match="no cgroup can be created"):
        detect("cgroup", proc_root="/nonexistent")
    assert detect("auto", proc_root="/nonexistent").mode == "rlimit"


def test_v2_without_memory_or_pids_is_not_used(fake_v2):
    proc_root, _own = fake_v2("cpu io")
    with pytest.raises(CgroupError, match="memory and pids are needed"):
        detect("cgroup", proc_root=str(proc_root), pid=4242)


def test_a_group_of_a_host_that_is_gone_is_removed(fake_v2):
    proc_root, own = fake_v2()
    gone = own / "agenthost-999999999"
    (gone / "job-1").mkdir(parents=True)
    alive = own / f"agenthost-{os.getpid()}"
    alive.mkdir()
    detect("cgroup", proc_root=str(proc_root), pid=4242)
    assert not gone.exists() and alive.exists()
