"""What tracing adds to the host's path of each job: the `agenthost.job` span's calls, timed per job.

The job table's only work for tracing is on its own thread: start the span at the offer, an event at each
step (offered, metadata checked, accepted, assigned, process taken, entrypoint started, shutdown asked,
exited), its traceparent for the job process, its attributes and its end. Exporting runs on the SDK's batch
thread. This times exactly those calls, N jobs at a time, with tracing on (exporting to a real Jaeger when
scripts/install-jaeger.sh has built one, else to an endpoint that refuses, the worst case) and off, in the
same run, and prints the median and p95 per job. The aim: at most 1 ms added per job (median).

A job process's part comes before its entrypoint: it sets up its own tracer provider, joined to the host's
span. That is timed too, in processes forked as the fork server forks them: what a job process does (its
tracing set up while it waits for its job, from modules its fork server preloaded: host.tracing.JOB_MODULES;
only joining the host's span once the job comes), against setting it all up when the job comes, with and
without those modules preloaded.
Usage: python bench/tracing_bench.py [JOBS] [ROUNDS]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from record import save  # noqa: E402  bench/record.py, beside this script

from host.tracing import JOB_MODULES, HostTracing, JobTracing  # noqa: E402

EVENTS = ("offered", "metadata checked", "accepted", "assigned", "process taken", "entrypoint started",
          "shutdown asked", "exited")


def one_job(tracing: HostTracing, n: int) -> float:
    start = time.perf_counter()
    span = tracing.job(agent="bench", **{"job.id": f"AJ_{n}", "dispatch.id": f"AD_{n}", "room": f"room-{n}",
                                         "worker.id": "AW_bench"})
    for event in EVENTS:
        span.event(event)
    _ = span.traceparent, span.trace_id
    span.set(**{"exit.code": 0, "cpu.seconds": 1.5, "memory.peak_bytes": 80_000_000, "shutdown.reason": "left"})
    span.end("ok")
    return time.perf_counter() - start


def measure(tracing: HostTracing, jobs: int, rounds: int) -> list[float]:
    times = []
    for r in range(rounds):
        times += [one_job(tracing, r * jobs + n) for n in range(jobs)]
        time.sleep(0.3)  # the batch thread exports meanwhile, as between a host's jobs
    return times


def job_setup(env: dict[str, str], forks: int, prepared: bool) -> list[float]:
    """Seconds a job process forked from this one spends on its tracing between its job's arrival and its
    entrypoint, for `forks` processes: joining the host's span only when its tracing was `prepared` while it
    waited (as a job process does), or setting all of it up then."""
    times = []
    parent = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    for _ in range(forks):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            tracing = JobTracing(tuple(env.items()), "bench") if prepared else None
            start = time.perf_counter()
            tracing = tracing or JobTracing(tuple(env.items()), "bench")
            joined = tracing.join(parent)
            took = time.perf_counter() - start
            os.write(write_end, f"{took if joined else -1.0}".encode())
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end) as answer:
            took = float(answer.read())
        os.waitpid(pid, 0)
        if took < 0:
            raise SystemExit("a job's tracing did not start: is the extra installed? pip install 'agenthost[tracing]'")
        times.append(took)
    return times


def jaeger() -> subprocess.Popen[bytes] | None:
    built = subprocess.run(["bash", str(ROOT / "scripts" / "install-jaeger.sh")], capture_output=True, text=True,
                           check=False)
    binary = built.stdout.strip().splitlines()[-1] if built.returncode == 0 else None
    if not binary or not os.path.exists(binary):
        return None
    workdir = tempfile.mkdtemp(prefix="agenthost-tracing-bench-")
    proc = subprocess.Popen([binary], cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from host.testing.harness import wait_port

    wait_port("127.0.0.1", 4318, 30)
    return proc


def main() -> None:
    jobs = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    backend = jaeger()
    endpoint = "http://127.0.0.1:4318" if backend is not None else "http://127.0.0.1:9"
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SERVICE_NAME": "agenthost-bench",
           "OTEL_EXPORTER_OTLP_TIMEOUT": "2"}
    os.environ.update(env)
    forks = max(5, min(jobs, 50))
    cold = job_setup(env, forks, prepared=False)  # nothing of OpenTelemetry imported yet: each job imports it
    for module in JOB_MODULES:
        __import__(module)
    preloaded = job_setup(env, forks, prepared=False)
    prepared = job_setup(env, forks, prepared=True)
    try:
        on, off = HostTracing(env), HostTracing({})
        measure(on, jobs, 1)  # warm-up: imports, the exporter's first connection
        with_tracing = measure(on, jobs, rounds)
        without = measure(off, jobs, rounds)
        on.shutdown()
    finally:
        if backend is not None:
            backend.terminate()
            backend.wait(10)
    print(f"{jobs * rounds} jobs' span calls, exporting to {'Jaeger' if backend else 'a refusing endpoint'} "
          f"({endpoint})")
    for name, times in (("tracing on ", with_tracing), ("tracing off", without)):
        ordered = sorted(times)
        print(f"{name}: median {statistics.median(times) * 1e6:8.1f} us   p95 "
              f"{ordered[int(len(ordered) * 0.95)] * 1e6:8.1f} us per job")
    added = statistics.median(with_tracing) - statistics.median(without)
    print(f"added per job (median): {added * 1e3:.3f} ms   (aim: at most 1 ms; {added * 1e3:.3f} / 1.000 = "
          f"{added / 1e-3:.3f}x of the bound)")
    print(f"spans not delivered: {on.dropped.value}")
    print(f"job process, its tracing's part between its job's arrival and its entrypoint ({forks} forked processes "
          "each):")
    for name, times in (("set up while it waited, its modules preloaded (as agenthost runs)", prepared),
                        ("set up when its job came, its modules preloaded", preloaded),
                        ("set up when its job came, nothing preloaded", cold)):
        print(f"  {name}: median {statistics.median(times) * 1e3:.2f} ms   max {max(times) * 1e3:.2f} ms")
    print(f"  as agenthost runs / nothing preloaded (median): "
          f"{statistics.median(prepared) / statistics.median(cold):.4f}x")
    save("tracing_bench", {"per_job_us": {"tracing on": statistics.median(with_tracing) * 1e6,
                                          "tracing off": statistics.median(without) * 1e6},
                           "added_ms": added * 1e3, "dropped": on.dropped.value,
                           "job_setup_ms": {"prepared while waiting": statistics.median(prepared) * 1e3,
                                            "preloaded": statistics.median(preloaded) * 1e3,
                                            "not preloaded": statistics.median(cold) * 1e3}})


if __name__ == "__main__":
    main()
