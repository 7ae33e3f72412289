"""The host's span of each job, and a job process's tracing, which joins it."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from host.errors import AgentHostError
from host.tracing.export import FLUSH_BOUND, DropCount, close_within, new_provider
from host.tracing.settings import enabled, installed, otel_env, protocol

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span

logger = logging.getLogger("agenthost.tracing")

SPAN_NAME = "agenthost.job"


class TracingSettingsError(AgentHostError):
    """The OTEL_* settings ask for something the SDK refuses (the host does not start: its jobs would fail the
    same way)."""


class JobSpan:
    """One job's `agenthost.job` span, written by the job table only."""

    def __init__(self, span: Span | None) -> None:
        self._span = span

    @property
    def traceparent(self) -> str | None:
        """The span's context as a W3C traceparent, for the job process."""
        if self._span is None:
            return None
        ctx = self._span.get_span_context()
        return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"

    @property
    def trace_id(self) -> str | None:
        return f"{self._span.get_span_context().trace_id:032x}" if self._span is not None else None

    def event(self, name: str, **attributes: str | int | float | bool) -> None:
        if self._span is not None:
            self._span.add_event(name, {f"agenthost.{k}": v for k, v in attributes.items()})

    def set(self, **attributes: str | int | float | bool | None) -> None:
        if self._span is not None:
            for key, value in attributes.items():
                if value is not None:
                    self._span.set_attribute(f"agenthost.{key}", value)

    def end(self, outcome: str, error: str | None = None) -> None:
        if self._span is None:
            return
        from opentelemetry.trace import Status, StatusCode

        self._span.set_attribute("agenthost.outcome", outcome)
        if error is not None:
            self._span.set_status(Status(StatusCode.ERROR, error))
        self._span.end()
        self._span = None  # ended once


class HostTracing:
    """The host's tracer: `job()` starts a job's span; off, every span is a no-op."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.dropped = DropCount()  # the host's own spans
        self.jobs_dropped = DropCount()  # job processes' spans, as they report them (host.process.handle)
        self.on = enabled(env)
        self.env = otel_env(env) if self.on else ()
        self.protocol = protocol(env)
        self._provider: TracerProvider | None = None
        if self.on and not installed():
            logger.error("tracing: OTEL_* settings ask for traces, but the OpenTelemetry SDK is not installed "
                         "(pip install 'agenthost[tracing]'); running without traces")
            self.on, self.env = False, ()
        if self.on:
            try:
                self._provider = new_provider(env, {"agenthost.role": "host"}, self.dropped)
            except ValueError as exc:  # the SDK's check of OTEL_BSP_* and the exporter's settings
                settings = ", ".join(f"{k}={v}" for k, v in self.env if not k.endswith(("HEADERS", "KEY")))
                raise TracingSettingsError(f"tracing: the OTEL_* settings cannot be used: {exc} ({settings})") from exc
            self._tracer = self._provider.get_tracer("agenthost")
            logger.info("tracing: %s spans over OTLP (%s) to %s", SPAN_NAME, protocol(env),
                        env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                        or "the exporter's default endpoint")

    def job(self, **attributes: str) -> JobSpan:
        if self._provider is None:
            return JobSpan(None)
        span = self._tracer.start_span(SPAN_NAME, attributes={f"agenthost.{k}": v for k, v in attributes.items()})
        return JobSpan(span)

    def shutdown(self) -> None:
        """Send what is queued and stop the batch thread, within FLUSH_BOUND."""
        if self._provider is not None:
            close_within(self._provider, FLUSH_BOUND)
            self._provider = None


class JobTracing:
    """A job process's tracing, set up while the process waits for its job (its exporter and batch thread are
    ready before the job comes); `join` makes the job's spans children of the host's `agenthost.job` span."""

    def __init__(self, env: Sequence[tuple[str, str]], agent: str) -> None:
        self.env = tuple(env)
        self.provider: TracerProvider | None = None
        self._token: object | None = None
        self.dropped = DropCount()  # reported to the host, which counts them with its own
        if not enabled(dict(env)) or not installed():
            return
        from opentelemetry import trace

        # the exporter and the SDK read their settings from the environment: the host's, and only the host's
        # (an OTEL_* variable of the agent's env would send its spans elsewhere, or turn them off)
        for key in [k for k in os.environ if k.startswith("OTEL_") and k not in dict(env)]:
            del os.environ[key]
        os.environ.update(dict(env))
        try:
            self.provider = new_provider(dict(env), {"agenthost.role": "job", "agenthost.agent": agent}, self.dropped)
        except ValueError as exc:  # the host checked the same settings at its start: never a reason to fail a job
            logger.warning("tracing: this job runs without traces: %s", exc)
            return
        trace.set_tracer_provider(self.provider)  # what agent code's trace.get_tracer() finds

    def join(self, traceparent: str | None) -> bool:
        """The job's spans from now on are in the trace of `traceparent`; False when there is none to join."""
        if self.provider is None or not traceparent:
            return False
        from opentelemetry import context
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._token = context.attach(TraceContextTextMapPropagator().extract({"traceparent": traceparent}))
        return True

    def close(self) -> None:
        """Send the job's last spans, within FLUSH_BOUND, once its job is over (JobDone sent): an endpoint that
        does not answer holds the process that long at most, and a kill at its shutdown timeout meanwhile loses
        these spans only (the job is judged by what it said: host.runtime.outcome)."""
        if self.provider is not None:
            close_within(self.provider, FLUSH_BOUND)
            self.provider = None
