import contextlib
import os
import subprocess
import sys
import time

import psutil

from host.memory import own_pages
from host.ops.resources import (
    MB,
    CpuLoad,
    JobCpuSample,
    TreeCpu,
    tree_memory,
)


def test_each_jobs_cpu_is_read_on_its_process_tree_and_summed_by_agent():
    spin = subprocess.Popen([sys.executable, "-c", "import sys\nsys.stdin.readline()\nwhile True: pass"],
                            stdin=subprocess.PIPE)
    try:
        cpu = CpuLoad(machine_sampler=lambda: 0.0, sampler=lambda: 0.0)
        jobs = [JobCpuSample("AJ_1", "hog", spin.pid, None), JobCpuSample("AJ_2", "calm", os.getpid(), None)]
        cpu.sample(jobs)
        assert cpu.jobs.by_job == {} and cpu.agent_share("hog") is None  # the first sample is a reference
        assert spin.stdin is not None
        spin.stdin.write(b"go\n")
        spin.stdin.flush()
        subprocess.run([sys.executable, "-c", "import time; t = time.process_time()\n"
                        "while time.process_time() - t < 0.3: pass"], check=True)  # time passes, on a CPU too
        cpu.sample(jobs)
        assert cpu.jobs.by_job["AJ_1"] > 0.05 and set(cpu.jobs.by_agent) == {"hog", "calm"}
        share = cpu.agent_share("hog")
        assert share is not None and share == cpu.jobs.by_agent["hog"] / cpu.cpus
        cpu.sample([JobCpuSample("AJ_1", "hog", 2 ** 22 + 1, None)])  # gone: no figure, no error
        assert cpu.jobs.by_job == {}
    finally:
        spin.kill()
        spin.wait()


def held(pid: int) -> int | None:
    """A process tree's memory as its limit holds it."""
    figures = tree_memory(pid, None)
    return figures[1] if figures is not None else None


def test_memory_of_a_process_includes_its_children():
    child = subprocess.Popen([sys.executable, "-c", "import time; x = b'1' * (60 * 1024 * 1024); time.sleep(30)"])
    parent = os.getpid()
    try:
        for _ in range(100):
            own = held(child.pid)
            if own and own > 60 * MB:
                break
            subprocess.run(["sleep", "0.05"], check=True)
        assert own is not None and own > 60 * MB
        with_children = held(parent)
        assert with_children is not None and with_children > own
    finally:
        child.kill()
        child.wait()
    assert tree_memory(child.pid, None) is None  # gone


def test_cpu_load_is_smoothed():
    samples = iter([0.8, 0.0, 0.0, 1.0])
    machine = iter([1.0, 0.0, 0.0, 0.0])
    load = CpuLoad(alpha=0.5, sampler=lambda: next(samples), machine_sampler=lambda: next(machine))
    assert load.sample() == 0.8  # the first sample is taken as it is
    assert load.machine == 1.0
    assert load.sample() == 0.4  # one quiet sample halves it
    assert load.machine == 0.5
    assert load.sample() == 0.2
    assert load.sample() == 0.6
    assert load.value == 0.6 and load.machine == 0.125


def test_cpu_load_samples_the_machine():
    load = CpuLoad()
    assert 0.0 <= load.sample() <= 1.0
    assert 0.0 <= load.machine <= 1.0


def test_tree_cpu_counts_a_busy_child_and_one_that_ended():
    # half a second of CPU, however long a busy machine takes to give it
    busy = "import time\nwhile time.process_time() < 0.5: pass\n"
    started = time.monotonic()
    cpu = TreeCpu()  # this test's process and its descendants
    child = subprocess.Popen([sys.executable, "-c", busy])
    child.wait()  # reaped: its CPU time is now this process's children_user
    share = cpu()
    elapsed = time.monotonic() - started
    cpus = len(os.sched_getaffinity(0))
    assert share * elapsed * cpus >= 0.45, (share, elapsed)  # the child's CPU seconds, counted
    subprocess.run(["sleep", "0.5"], check=True)  # an idle half second
    assert cpu() < 0.3 / cpus


def test_a_forked_process_is_charged_its_own_pages_not_the_ones_it_shares():
    # the parent fills 80 MB, then forks a child that only reads them: the child's resident memory counts
    # them, its own pages do not (as a job process forked from its template)
    script = ("import os, sys, time\nheap = bytearray(b'x' * (80 * 1024 * 1024))\npid = os.fork()\n"
              "if pid == 0:\n    sum(heap[::4096]); print('child', os.getpid(), flush=True); time.sleep(60)\n"
              "else:\n    time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child = None
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline().split()[1])
        own = own_pages(child)
        resident = psutil.Process(child).memory_info().rss
        assert own is not None and resident > 80 * MB and own < 20 * MB, (own, resident)
        again = held(child)  # read again: a few of its pages may have changed in between
        assert again is not None and abs(again - own) < MB, (again, own)
    finally:
        parent.kill()
        parent.wait()
        if child is not None:
            with contextlib.suppress(OSError):
                os.kill(child, 9)


class _Counted:
    """A cgroup whose CPU count the test sets."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def cpu_seconds(self) -> float:
        return self.seconds


def test_a_jobs_cpu_seconds_count_from_its_ready_to_its_exit():
    """The time before the first sample and after the last one are the job's too; its prewarm is not."""
    from host.ops.resources import JobCpuEnd, JobsCpu

    jobs, group = JobsCpu(), _Counted()
    sample = [JobCpuSample("AJ_1", "a", 1, group, ready_cpu=2.0)]  # type: ignore[arg-type]
    group.seconds = 3.5  # 2 s of prewarm, then 1.5 s of its job before the monitor first looks
    jobs.sample(sample)
    assert jobs.seconds_by_job == {"AJ_1": 1.5} and jobs.seconds_by_agent == {"a": 1.5}
    assert jobs.by_job == {}  # a rate needs two looks
    group.seconds = 4.0
    jobs.sample(sample)
    assert jobs.seconds_by_job == {"AJ_1": 2.0} and jobs.seconds_by_agent == {"a": 2.0} and "AJ_1" in jobs.by_job
    jobs.ended(JobCpuEnd("AJ_1", "a", cpu_seconds=2.75, bound=100.0))  # its exit: 0.75 s after the last look
    jobs.sample([])
    assert jobs.seconds_by_agent == {"a": 2.75} and jobs.seconds_by_job == {}
    jobs.ended(JobCpuEnd("AJ_2", "a", cpu_seconds=0.5, bound=100.0))  # over before the monitor ever looked
    jobs.ended(JobCpuEnd("AJ_3", "a", cpu_seconds=1e9, bound=3.0))  # a job's own word, past what it could use
    jobs.sample([])
    assert jobs.seconds_by_agent == {"a": 2.75 + 0.5 + 3.0}


def test_a_job_ended_while_it_was_sampled_is_counted_once():
    from host.ops.resources import JobCpuEnd, JobsCpu

    jobs, group = JobsCpu(), _Counted()
    sample = [JobCpuSample("AJ_1", "a", 1, group)]  # type: ignore[arg-type]
    group.seconds = 1.0
    jobs.sample(sample)
    group.seconds = 1.25
    jobs.ended(JobCpuEnd("AJ_1", "a", cpu_seconds=1.5, bound=100.0))
    jobs.sample(sample)  # the list was taken before its exit: the look and the exit both counted, once
    assert jobs.seconds_by_agent == {"a": 1.5} and jobs.seconds_by_job == {}


def test_what_a_job_says_of_its_memory_is_shown_but_its_limit_holds_it_to_what_the_host_reads(monkeypatch):
    """Where the host may not read a job's own pages (a host run as a user), the job's own figure is shown;
    its limit is held to what the host reads itself (its resident memory there): agent code could say less."""
    import host.ops.resources as resources
    from host.ops.resources import memory_of

    monkeypatch.setattr(resources, "own_pages", lambda pid: None)  # as a user reading a non-dumpable process
    [(shown, checked)] = memory_of([(os.getpid(), None, 12345)])
    rss = psutil.Process().memory_info().rss
    assert shown is not None and checked is not None
    assert shown < checked and checked >= rss // 2  # shown: what it said (and its children's); held: resident
    [(shown, checked)] = memory_of([(os.getpid(), None, None)])  # it said nothing: both resident
    assert shown == checked or abs(shown - checked) < 64 * MB  # type: ignore[operator]
