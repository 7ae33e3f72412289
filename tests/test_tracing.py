"""Tracing's settings, spans and bounds, without a backend (tests/e2e/test_e2e_tracing.py has Jaeger)."""

from __future__ import annotations

import os
import time

import pytest

from host.tracing import HostTracing, JobSpan, JobTracing, enabled, otel_env

pytest.importorskip("opentelemetry.sdk", reason="needs the extra: pip install 'agenthost[tracing]'")


def test_only_otel_settings_turn_it_on():
    assert not enabled({})
    assert enabled({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert enabled({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"})
    assert enabled({"OTEL_TRACES_EXPORTER": "otlp"})
    assert not enabled({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"})
    assert not enabled({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"})
    assert otel_env({"OTEL_A": "1", "PATH": "/bin", "OTEL_B": "2"}) == (("OTEL_A", "1"), ("OTEL_B", "2"))


def test_off_every_span_is_a_no_op():
    tracing = HostTracing({})
    span = tracing.job(agent="a")
    span.event("offered")
    span.end("ok")
    assert (tracing.on, span.traceparent, span.trace_id, tracing.env) == (False, None, None, ())


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


def test_a_job_process_continues_the_hosts_trace(monkeypatch):
    from opentelemetry import trace

    monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", trace.Once())
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    parent = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    job = JobTracing((("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"), ("OTEL_EXPORTER_OTLP_TIMEOUT", "1")),
                     "agent")  # set up while the process waits for its job
    assert job.join(parent) and not JobTracing((), "agent").join(parent)
    with trace.get_tracer("test").start_as_current_span("agent.work") as span:
        context = span.get_span_context()
        assert f"{context.trace_id:032x}" == "ab" * 16
        assert f"{span.parent.span_id:016x}" == "cd" * 8  # type: ignore[attr-defined]
    job.close()
    assert JobSpan(None).traceparent is None


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


def test_a_job_traces_by_the_hosts_settings_only(monkeypatch):
    """OTEL_* variables of the agent's own env that the host did not set (one that turns the SDK off, another
    endpoint) are gone from a traced job process's environment: the exporter and the SDK read them there."""
    from opentelemetry import trace

    monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", trace.Once())
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:1/elsewhere")
    host = (("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"), ("OTEL_EXPORTER_OTLP_TIMEOUT", "1"))
    job = JobTracing(host, "agent")
    assert job.provider is not None and "OTEL_SDK_DISABLED" not in os.environ
    assert "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" not in os.environ
    assert os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:9"
    job.close()
