import os
import subprocess
import sys

from host.ops.resources import MB, CpuLoad, memory_bytes, worker_load


def test_worker_load_is_the_larger_of_cpu_and_job_slots():
    assert worker_load(0.1, 1, 4, 0.9) == (0.25, False)
    assert worker_load(0.5, 1, 4, 0.9) == (0.5, False)
    assert worker_load(0.0, 4, 4, 0.9) == (1.0, True)  # at max_jobs: full
    assert worker_load(0.95, 0, 0, 0.9) == (0.95, True)  # CPU at the threshold: full
    assert worker_load(0.95, 0, 0, 0.0) == (0.95, False)  # threshold 0: CPU never makes it full
    assert worker_load(0.2, 7, 0, 0.9) == (0.2, False)  # no max_jobs: only CPU counts


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
    load = CpuLoad(alpha=0.5, sampler=lambda: next(samples))
    assert load.sample() == 0.8  # the first sample is taken as it is
    assert load.sample() == 0.4  # one quiet sample halves it
    assert load.sample() == 0.2
    assert load.sample() == 0.6


def test_cpu_load_samples_the_machine():
    load = CpuLoad()
    assert 0.0 <= load.sample() <= 1.0
