"""A span queue that never blocks: what an unreachable or silent endpoint costs (tests/e2e has Jaeger)."""

from __future__ import annotations

import pytest

pytest.importorskip("opentelemetry.sdk", reason="needs the extra: pip install 'agenthost[tracing]'")

import time

from host.tracing import HostTracing, JobTracing


def test_an_unreachable_endpoint_never_blocks_and_its_spans_are_counted(monkeypatch):
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
           "OTEL_BSP_SCHEDULE_DELAY": "50"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    tracing = HostTracing(env)
    started = time.perf_counter()
    parents = []
    for n in range(20):
        span = tracing.job(agent="a", **{"job.id": f"AJ_{n}"})
        span.event("offered")
        parents.append(span.traceparent)
        span.end("ok")
    assert time.perf_counter() - started < 0.5  # the job table's part: no export on its thread
    assert tracing.on and all(p is not None and len(p) == 55 and p.startswith("00-") for p in parents)
    deadline = time.monotonic() + 30
    while tracing.dropped.value < 20 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert tracing.dropped.value >= 20
    tracing.shutdown()


def test_a_job_closes_its_tracing_within_the_bound_when_the_endpoint_never_answers(monkeypatch):
    """An endpoint that accepts and never answers: the job's last spans are given up after FLUSH_BOUND, not after
    the exporter's retries (which would hold the process past its shutdown timeout)."""
    import socket

    from opentelemetry import trace

    from host.tracing import FLUSH_BOUND

    monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", trace.Once())
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # connections are accepted by the kernel, and never answered
    endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
    try:
        job = JobTracing((("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint), ("OTEL_EXPORTER_OTLP_TIMEOUT", "30")), "agent")
        job.join("00-" + "ab" * 16 + "-" + "cd" * 8 + "-01")
        for n in range(50):
            with trace.get_tracer("test").start_as_current_span(f"work-{n}"):
                pass
        started = time.monotonic()
        job.close()
        assert time.monotonic() - started < FLUSH_BOUND + 1.5
    finally:
        silent.close()
