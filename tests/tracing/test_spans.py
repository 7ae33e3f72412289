"""The host's span of each job, and a job process's own spans joining its trace."""

from __future__ import annotations

import pytest

pytest.importorskip("opentelemetry.sdk", reason="needs the extra: pip install 'agenthost[tracing]'")

import os

from host.tracing import HostTracing, JobSpan, JobTracing


def test_off_every_span_is_a_no_op():
    tracing = HostTracing({})
    span = tracing.job(agent="a")
    span.event("offered")
    span.end("ok")
    assert (tracing.on, span.traceparent, span.trace_id, tracing.env) == (False, None, None, ())


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

