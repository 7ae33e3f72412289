"""Where a process's cgroups are, read from /proc (host.process.cgroupfs)."""

from __future__ import annotations

from pathlib import Path

from host.process.cgroupfs import Mount, own_dir, parse_mountinfo, parse_proc_cgroup

MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 /kubepods /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified\\040dir rw,relatime - cgroup2 cgroup2 rw
"""


def test_cgroup_mounts_are_read_from_mountinfo():
    mounts = parse_mountinfo(MOUNTINFO)
    assert [m.point for m in mounts] == ["/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/memory",
                                         "/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified dir"]
    assert {"cpu", "cpuacct"} <= mounts[0].controllers and mounts[3].fstype == "cgroup2"
    assert mounts[2].root == "/kubepods"


def test_where_this_process_is():
    where = parse_proc_cgroup("9:name=systemd:/\n4:memory:/a/b\n2:cpu,cpuacct:/c\n0::/d\n")
    assert where == {"name=systemd": "/", "memory": "/a/b", "cpu": "/c", "cpuacct": "/c", "": "/d"}
    assert own_dir(Mount("/m", "/", "cgroup", frozenset()), "/a/b") == Path("/m/a/b")
    assert own_dir(Mount("/m", "/a", "cgroup", frozenset()), "/a/b") == Path("/m/b")  # a container's view
    assert own_dir(Mount("/m", "/", "cgroup", frozenset()), "/") == Path("/m")
