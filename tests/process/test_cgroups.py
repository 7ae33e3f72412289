"""Job limits: finding the mode, and real cgroups on this machine (v1 or v2, whichever the kernel offers), a
simulated v2 tree where the kernel offers v1 only, and rlimits."""

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from host.process.cgroupfs import CgroupError
from host.process.cgroups import (
    RLIMIT_AS_RESERVED,
    CgroupConfinement,
    Confinement,
    JobBounds,
    host_weight,
    template_weight,
)
from host.process.detect import detect

MB = 1024 * 1024


def sleeper(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def go(proc: subprocess.Popen[bytes]) -> None:
    """Let a process that waits on its stdin (once it is in its group) go on."""
    assert proc.stdin is not None
    proc.stdin.write(b"go\n")
    proc.stdin.flush()


def test_rlimit_mode_bounds_the_address_space_a_job_may_add():
    proc = sleeper("import time; print('up', flush=True); time.sleep(60)")
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
        Confinement().confine(proc.pid, "a-1", JobBounds(100 * MB, 0, 0))
        soft, hard = resource.prlimit(proc.pid, resource.RLIMIT_AS)
        with open(f"/proc/{proc.pid}/stat", "rb") as fh:
            vsize = int(fh.read().rsplit(b")", 1)[1].split()[20])
        room = 2 * 100 * MB + RLIMIT_AS_RESERVED
        assert soft == hard and vsize + room <= soft <= vsize + room + 16 * MB
    finally:
        proc.kill()
        proc.wait()


def test_the_hosts_group_weighs_as_much_as_its_running_jobs_would():
    assert host_weight(1, 0) == host_weight(1, 1) == ("cpu.shares", "1024")
    assert host_weight(1, 3) == ("cpu.shares", "3072")
    assert host_weight(1, 1000) == ("cpu.shares", "262144")
    assert host_weight(2, 0) == ("cpu.weight", "100")
    assert host_weight(2, 7) == ("cpu.weight", "700")
    assert host_weight(2, 500) == ("cpu.weight", "10000")
    assert template_weight(1) == ("cpu.shares", "9537")  # the kernel's weight for nice -10 is 9548
    assert template_weight(2) == ("cpu.weight", "931")


# -- a simulated cgroup v2 tree: plain files where the kernel has its own --------------------------------------
def test_v2_gives_each_job_a_group_with_its_bounds(fake_v2):
    proc_root, own = fake_v2()
    confinement = detect("cgroup", proc_root=str(proc_root), pid=4242)
    assert isinstance(confinement, CgroupConfinement) and confinement.mode == "cgroup v2"
    base = own / "agenthost-4242"
    assert (base / "cgroup.subtree_control").read_text() == "+memory +pids"  # CPU waits for a job bounding it
    target = sleeper("import time; time.sleep(60)")
    try:
        group = confinement.confine(target.pid, "echo-1", JobBounds(200 * MB, 64, 0.5))
        assert group is not None
        assert (own / "cgroup.subtree_control").read_text() == (base / "cgroup.subtree_control").read_text() == "+cpu"
        d = base / "echo-1"
        assert (d / "memory.max").read_text() == str(200 * MB)
        assert (d / "pids.max").read_text() == "64"
        assert (d / "cpu.max").read_text() == "50000 100000"
        assert (d / "cgroup.procs").read_text() == str(target.pid)
        (d / "memory.current").write_text(str(150 * MB))
        (d / "memory.stat").write_text(f"anon 1\ninactive_file {10 * MB}\n")
        assert group.memory_bytes() == 140 * MB
        (d / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
        assert group.oom_kills() == 1
        (d / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\n")
        assert group.cpu_seconds() == 2.5
        assert group.kill() == [target.pid]  # no cgroup.kill file here: each pid is killed
        assert target.wait(timeout=10) == -signal.SIGKILL
        assert (d / "pids.max").read_text() == "0"  # no fork while it is killed
    finally:
        target.kill()
        target.wait()


def test_v2_jobs_without_a_cpu_bound_are_plain_processes_for_the_scheduler(fake_v2):
    proc_root, own = fake_v2()
    confinement = detect("cgroup", proc_root=str(proc_root), pid=4141)
    assert isinstance(confinement, CgroupConfinement)
    base = own / "agenthost-4141"
    target = sleeper("import time; time.sleep(60)")
    try:
        template = confinement.confine_template(target.pid, "echo-template-1", JobBounds(0, 8, 0))
        group = confinement.confine(target.pid, "echo-1", JobBounds(200 * MB, 64, 0))
        assert template is not None and group is not None and "cpu" not in group.dirs
        confinement.job_running(group, True)
        assert "cpu" not in (own / "cgroup.subtree_control").read_text()
        assert "cpu" not in (base / "cgroup.subtree_control").read_text()
        assert not (base / "echo-template-1" / "cpu.weight").exists()
        (base / "echo-1" / "cpu.stat").write_text("usage_usec 1500000\n")  # v2 counts CPU in every group
        assert group.cpu_seconds() == 1.5
    finally:
        target.kill()
        target.wait()


def test_v2_the_hosts_group_weight_follows_its_running_jobs_once_cpu_is_bounded(fake_v2):
    proc_root, own = fake_v2()
    confinement = detect("cgroup", proc_root=str(proc_root), pid=4343)
    assert isinstance(confinement, CgroupConfinement)
    weight = own / "agenthost-4343" / "cpu.weight"
    targets = [sleeper("import time; time.sleep(60)") for _ in range(3)]
    try:
        template = confinement.confine_template(targets[0].pid, "echo-template-1", JobBounds(0, 8, 0))
        assert template is not None and not (own / "agenthost-4343" / "echo-template-1" / "cpu.weight").exists()
        plain = confinement.confine(targets[2].pid, "echo-plain", JobBounds(0, 0, 0))
        confinement.job_running(plain, True)
        assert not weight.exists()
        first, second = (confinement.confine(t.pid, f"echo-{i}", JobBounds(0, 0, 1.0))
                         for i, t in enumerate(targets[:2]))
        # the first bound turned CPU groups on for every group below the host's: the template now weighs as its
        # raised priority, the host's group as the job already running
        assert (own / "agenthost-4343" / "echo-template-1" / "cpu.weight").read_text() == "931"
        assert weight.read_text() == "100"
        confinement.job_running(first, True)
        confinement.job_running(first, True)  # said twice, counted once
        assert weight.read_text() == "200"
        confinement.job_running(second, True)
        assert weight.read_text() == "300"
        confinement.job_running(first, False)
        confinement.job_running(plain, False)
        assert weight.read_text() == "100"
        confinement.close()  # the host's own group hands the controller down no more
        assert (own / "cgroup.subtree_control").read_text() == "-cpu"
    finally:
        for t in targets:
            t.kill()
            t.wait()


def fake_v1(tmp_path: Path, hierarchies: tuple[str, ...]) -> tuple[Path, Path]:
    """A /proc and cgroup v1 hierarchies (each a comma-joined set of controllers) with this process in `svc`:
    (proc root, the mounts' parent)."""
    proc, cg = tmp_path / "proc", tmp_path / "cg"
    (proc / "self").mkdir(parents=True)
    mountinfo, cgroup = [], []
    for i, controllers in enumerate(hierarchies):
        (cg / controllers / "svc").mkdir(parents=True)
        mountinfo.append(f"{30 + i} 25 0:{30 + i} / {cg / controllers} rw - cgroup cgroup rw,{controllers}")
        cgroup.append(f"{i + 1}:{controllers}:/svc")
    (proc / "self" / "mountinfo").write_text("\n".join(mountinfo) + "\n")
    (proc / "self" / "cgroup").write_text("\n".join(cgroup) + "\n")
    return proc, cg


@pytest.mark.parametrize("hierarchies", [("memory", "pids", "cpu,cpuacct"), ("memory", "pids", "cpu", "cpuacct")])
def test_v1_puts_a_job_in_a_cpu_group_only_with_a_cpu_bound(tmp_path, hierarchies):
    proc_root, cg = fake_v1(tmp_path, hierarchies)
    confinement = detect("cgroup", proc_root=str(proc_root), pid=os.getpid())  # alive: not cleaned as stale
    assert isinstance(confinement, CgroupConfinement) and confinement.version == 1
    cpu = cg / ("cpu,cpuacct" if "cpu,cpuacct" in hierarchies else "cpu") / "svc" / f"agenthost-{os.getpid()}"
    targets = [sleeper("import time; time.sleep(60)") for _ in range(2)]
    try:
        plain = confinement.confine(targets[0].pid, "echo-1", JobBounds(64 * MB, 16, 0))
        assert plain is not None and set(plain.dirs) == (
            {"memory", "pids"} if "cpu,cpuacct" in hierarchies else {"memory", "pids", "cpuacct"})
        assert not (cpu / "echo-1").exists()
        bounded = confinement.confine(targets[1].pid, "echo-2", JobBounds(64 * MB, 16, 0.5))
        assert bounded is not None and {"memory", "pids", "cpu", "cpuacct"} <= set(bounded.dirs)
        assert (cpu / "echo-2" / "cpu.cfs_quota_us").read_text() == "50000"
        confinement.job_running(plain, True)
        confinement.job_running(bounded, True)
        assert (cpu / "cpu.shares").read_text() == "1024"  # as its one running job in a CPU group
    finally:
        for t in targets:
            t.kill()
            t.wait()


def test_v1_keeps_cpu_where_it_shares_a_hierarchy_with_memory(tmp_path):
    proc_root, _ = fake_v1(tmp_path, ("memory,cpu,cpuacct", "pids"))
    confinement = detect("cgroup", proc_root=str(proc_root), pid=os.getpid())
    assert isinstance(confinement, CgroupConfinement)
    target = sleeper("import time; time.sleep(60)")
    try:
        group = confinement.confine(target.pid, "echo-1", JobBounds(64 * MB, 16, 0))
        assert group is not None and {"memory", "pids", "cpu"} <= set(group.dirs)
        assert (group.dirs["memory"] / "memory.limit_in_bytes").read_text() == str(64 * MB)
    finally:
        target.kill()
        target.wait()


def test_v2_a_cpu_controller_already_handed_down_is_used_from_the_start(fake_v2):
    proc_root, own = fake_v2()
    (own / "cgroup.subtree_control").write_text("memory pids cpu\n")
    confinement = detect("cgroup", proc_root=str(proc_root), pid=4747)
    assert isinstance(confinement, CgroupConfinement) and "cpu" in confinement.base
    target = sleeper("import time; time.sleep(60)")
    try:
        group = confinement.confine(target.pid, "echo-1", JobBounds(0, 0, 0))
        confinement.job_running(group, True)
        assert (own / "agenthost-4747" / "cpu.weight").read_text() == "100"
        assert (own / "agenthost-4747" / "echo-1" / "cpu.max").read_text() == "max"
    finally:
        target.kill()
        target.wait()


# -- this machine's own cgroups --------------------------------------------------------------------------------
@pytest.fixture
def real() -> CgroupConfinement:
    try:
        found = detect("cgroup")
    except CgroupError as exc:
        pytest.skip(f"this machine lets no cgroup be created: {exc}")
    assert isinstance(found, CgroupConfinement)
    yield found
    found.close()


def wait_for(predicate, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_the_kernel_stops_a_job_at_its_memory_limit(real):
    hog = sleeper("import time\nprint('up', flush=True); import sys; sys.stdin.readline()\n"
                  "hoard = [b'\\x01' * (10 * 1024 * 1024) for _ in range(60)]\n"
                  "print('survived', flush=True)")
    assert hog.stdout is not None and hog.stdout.readline() == b"up\n"
    group = real.confine(hog.pid, "hog-1", JobBounds(64 * MB, 0, 0))
    assert group is not None
    go(hog)
    assert hog.wait(timeout=30) == -signal.SIGKILL
    assert hog.stdout.read() == b""
    assert group.oom_kills() - group.oom_kills_at_start >= 1
    wait_for(group.remove, "the group is removed once its process is reaped")


def test_a_fork_bomb_stops_at_pids_limit_and_nothing_outlives_the_group(real):
    bomb = sleeper("import os, time, subprocess, sys\n"
                   "print('up', flush=True); import sys; sys.stdin.readline()\n"
                   "started = 0\n"
                   "for _ in range(40):\n"
                   "    try:\n"
                   "        subprocess.Popen(['setsid', 'sleep', '300']); started += 1\n"
                   "    except OSError:\n"
                   "        break\n"
                   "print(started, flush=True); time.sleep(300)")
    assert bomb.stdout is not None and bomb.stdout.readline() == b"up\n"
    group = real.confine(bomb.pid, "bomb-1", JobBounds(0, 8, 0))
    assert group is not None
    go(bomb)
    started = int(bomb.stdout.readline())
    assert 0 < started < 8, started
    wait_for(lambda: len(group.pids()) >= started, "the sleepers are in the group")
    inside = group.pids()
    killed = group.kill()
    assert set(inside) <= set(killed)
    assert bomb.wait(timeout=10) == -signal.SIGKILL
    wait_for(lambda: not group.pids(), "every process of the group is gone, setsid or not")
    wait_for(group.remove, "the group is removed")


def test_cpu_is_counted_per_group_and_bounded(real):
    if not real.can_bound_cpu:
        pytest.skip("no cpu controller")
    spin = sleeper("import time\nprint('up', flush=True); import sys; sys.stdin.readline()\nt = time.time()\n"
                   "while time.time() - t < 2: pass\nprint(time.process_time(), flush=True)")
    assert spin.stdout is not None and spin.stdout.readline() == b"up\n"
    group = real.confine(spin.pid, "spin-1", JobBounds(0, 0, 0.25))
    assert group is not None
    go(spin)
    used = float(spin.stdout.readline())
    assert used < 2 * 0.25 + 0.3, f"a quarter CPU for 2 s let it use {used:.2f} s"
    counted = group.cpu_seconds()
    assert counted is not None and counted >= used * 0.8
    spin.wait(timeout=10)
    wait_for(group.remove, "the group is removed")


def test_a_job_without_a_cpu_bound_is_scheduled_as_a_plain_process(real):
    proc = sleeper("import time; print('up', flush=True); time.sleep(60)")
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
        mine = Path(f"/proc/{os.getpid()}/cgroup").read_text()
        group = real.confine(proc.pid, "plain-1", JobBounds(64 * MB, 16, 0))
        assert group is not None
        assert "cpu" not in group.dirs
        theirs = Path(f"/proc/{proc.pid}/cgroup").read_text()
        assert "plain-1" in theirs  # in its memory group all the same
        if real.version == 1:
            cpu = [line for line in theirs.splitlines() if "cpu" in line.split(":")[1].split(",")]
            assert cpu and set(cpu) <= set(mine.splitlines()), f"not in the host's CPU group: {theirs}"
        else:
            controllers = (group.dirs["memory"] / "cgroup.controllers").read_text().split()
            assert "memory" in controllers and "cpu" not in controllers, controllers
    finally:
        proc.kill()
        proc.wait()
    wait_for(group.remove, "the group is removed")


def test_running_jobs_get_a_plain_process_share_each_on_a_busy_cpu(real):
    """Three spinning jobs with a CPU bound (each in a CPU group) and one spinning process beside the host's
    group, all on one CPU: the jobs get about three quarters of it, as three plain processes would (with the
    group at the default weight, half)."""
    if not real.can_bound_cpu:
        pytest.skip("no cpu controller")
    cpu = min(os.sched_getaffinity(0))
    spin = "import sys; print('up', flush=True); sys.stdin.readline()\nwhile True: pass"
    procs = [sleeper(spin) for _ in range(4)]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
            os.sched_setaffinity(proc.pid, {cpu})
        groups = [real.confine(proc.pid, f"spin-{i}", JobBounds(0, 0, 1.0)) for i, proc in enumerate(procs[:3])]
        for group in groups:
            real.job_running(group, True)
        for proc in procs:
            go(proc)
        before = [_cpu(proc.pid) for proc in procs]
        wait_for(lambda: _cpu(procs[0].pid) - before[0] > 0.6, "the jobs spin", timeout=60)
        used = [_cpu(proc.pid) - b for proc, b in zip(procs, before, strict=True)]
        jobs = sum(used[:3]) / sum(used)
        assert jobs > 0.65, f"the three jobs got {jobs:.0%} of the CPU against one process"
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as fh:
        fields = fh.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
