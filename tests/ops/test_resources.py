import contextlib
import os
import subprocess
import sys
import time

import psutil

from host.ops.resources import (
    MB,
    OPEN_CEILING,
    SERVER_TARGET_LOAD,
    CpuLoad,
    JobCpuSample,
    TreeCpu,
    WorkerLoad,
    memory_bytes,
    own_pages,
    worker_load,
)


def load(**kw):
    return worker_load(**{"cpu": 0.0, "jobs": 0, "max_jobs": 0, "threshold": 0.9, **kw})


def test_an_open_worker_always_reports_less_than_the_servers_target_load():
    # livekit-server offers nothing at or above its target (0.7): every free slot must stay below it
    for max_jobs in (1, 2, 4, 10, 100):
        for jobs in range(max_jobs):
            state = load(jobs=jobs, max_jobs=max_jobs)
            assert not state.full and state.load < SERVER_TARGET_LOAD and state.closed_because is None
    assert load(jobs=3, max_jobs=4).load == 0.525  # the case the server used to drop: 0.75 >= 0.7
    for cpu in (0.0, 0.5, 0.8, 0.89):
        assert load(cpu=cpu).load < SERVER_TARGET_LOAD and not load(cpu=cpu).full


def test_the_larger_of_cpu_and_slots_counts():
    assert load(cpu=0.45, jobs=1, max_jobs=4).load == 0.35  # cpu 0.45 / 0.9 = 0.5 of the target
    assert load(cpu=0.09, jobs=2, max_jobs=4).load == 0.35  # slots 2 / 4
    assert load(cpu=0.45, threshold=0.9, target=0.5).load == 0.25


def test_full_names_why():
    assert load(jobs=4, max_jobs=4) == WorkerLoad(1.0, True, "at max_jobs (4)", "max_jobs")
    assert load(cpu=0.95) == WorkerLoad(1.0, True, "its CPU use 95% reached --load-threshold 90%", "cpu")
    assert load(process_error="ImportError: x") == WorkerLoad(1.0, True, "cannot start job processes: ImportError: x",
                                                              "no_process")


def test_at_the_threshold_only_the_agents_taking_their_share_close():
    # one agent's jobs take the CPU: that agent closes, an agent whose jobs use next to nothing stays open
    hog = load(cpu=0.95, agent_cpu=0.93, busy_agents=1)
    assert hog == WorkerLoad(1.0, True, "its CPU use 95% reached --load-threshold 90%; this agent's jobs use 93%",
                             "cpu_share")
    quiet = load(cpu=0.95, agent_cpu=0.0, busy_agents=1, jobs=1, max_jobs=4)
    assert quiet == WorkerLoad(round(SERVER_TARGET_LOAD * OPEN_CEILING, 3), False, None)  # open, the last choice
    # two agents sharing the CPU alike both take their share: both close
    assert load(cpu=0.95, agent_cpu=0.46, busy_agents=2).full
    assert load(cpu=0.95, agent_cpu=0.44, busy_agents=2).full
    assert not load(cpu=0.95, agent_cpu=0.2, busy_agents=2).full
    # the CPU goes elsewhere (templates starting, the host): the agent using the most still closes, so the
    # host sheds something
    assert load(cpu=0.95, agent_cpu=0.2, busy_agents=2, top_agent=True).full
    assert load(cpu=0.95).full  # no figure for the agent: the host's use decides
    assert load(cpu=0.95, agent_cpu=0.0, process_error="x").closed == "no_process"


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


def test_threshold_zero_leaves_cpu_out():
    assert load(cpu=0.99, threshold=0.0) == WorkerLoad(0.0, False, None)
    assert load(cpu=0.99, threshold=0.0, jobs=1, max_jobs=2).load == 0.35


def test_memory_of_a_process_includes_its_children():
    child = subprocess.Popen([sys.executable, "-c", "import time; x = b'1' * (60 * 1024 * 1024); time.sleep(30)"])
    parent = os.getpid()
    try:
        for _ in range(100):
            own = memory_bytes(child.pid)
            if own and own > 60 * MB:
                break
            subprocess.run(["sleep", "0.05"], check=True)
        assert own is not None and own > 60 * MB
        with_children = memory_bytes(parent)
        assert with_children is not None and with_children > own
    finally:
        child.kill()
        child.wait()
    assert memory_bytes(child.pid) is None  # gone


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


def test_a_machine_busy_with_other_work_leaves_the_host_open_as_the_last_choice():
    # a dispatch that only this host can take must still be offered to it: never full, always under the target
    for machine in (0.9, 0.95, 1.0):
        state = load(cpu=0.1, machine_cpu=machine)
        assert not state.full and state.closed_because is None
        assert state.load == round(SERVER_TARGET_LOAD * OPEN_CEILING, 3) < SERVER_TARGET_LOAD
    # below the threshold the machine's use counts like the host's own: a host with room is preferred
    assert load(cpu=0.09, machine_cpu=0.45).load == 0.35
    assert load(cpu=0.99, machine_cpu=0.99, threshold=0.0) == WorkerLoad(0.0, False, None)


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


def test_a_host_running_no_job_is_not_closed_by_its_own_start_up():
    starting = load(cpu=0.95, host_jobs=0)  # templates importing, processes prewarming: nothing to shed
    assert not starting.full and starting.load == round(SERVER_TARGET_LOAD * OPEN_CEILING, 3)
    assert load(cpu=0.95, host_jobs=1).full


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
        assert memory_bytes(child) == own
    finally:
        parent.kill()
        parent.wait()
        if child is not None:
            with contextlib.suppress(OSError):
                os.kill(child, 9)
