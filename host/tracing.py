"""OpenTelemetry traces of jobs, configured only by the standard `OTEL_*` environment variables.

The host emits one span per job, `agenthost.job`, from the offer to the process's exit (so a job killed
with its process still has its span), with an event at each step and the job's facts as attributes. A job
process is handed the span's context (W3C `traceparent`) and the same `OTEL_*` settings, and sets up a
tracer provider of its own whose spans (the agent's, livekit-agents' `agent_session`, `user_turn`, ...) join
that trace. Exporting runs on the SDK's batch thread, from a bounded queue: an exporter that cannot reach
its endpoint never slows a job, and what it drops is counted.

Tracing is on when `OTEL_TRACES_EXPORTER` names `otlp`, or an OTLP endpoint is set
(`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), and not when `OTEL_SDK_DISABLED` is
true or `OTEL_TRACES_EXPORTER` is `none`. The protocol is `OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL`
(`http/protobuf`, the default, or `grpc`).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from host.errors import AgentHostError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
    from opentelemetry.trace import Span

logger = logging.getLogger("agenthost.tracing")


class TracingSettingsError(AgentHostError):
    """The OTEL_* settings ask for something the SDK refuses (the host does not start: its jobs would fail the
    same way)."""

SPAN_NAME = "agenthost.job"
FLUSH_BOUND = 2.0  # seconds a process spends, at most, sending its last spans
# What a job process's tracing imports (the SDK, the OTLP/HTTP exporter and the HTTP stack under it): with tracing
# on, the fork server preloads them, and a job process sets its tracing up in a few milliseconds, not the 150 ms
# or more of importing them between its offer and its entrypoint. gRPC is not preloaded: it must not be loaded
# in a process that forks.
JOB_MODULES = ("opentelemetry.sdk.trace.export", "opentelemetry.sdk.resources",
               "opentelemetry.trace.propagation.tracecontext", "opentelemetry.exporter.otlp.proto.http.trace_exporter",
               "requests")


def enabled(env: Mapping[str, str]) -> bool:
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = {e.strip().lower() for e in env.get("OTEL_TRACES_EXPORTER", "").split(",") if e.strip()}
    if "none" in exporters:
        return False
    return "otlp" in exporters or bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                                       or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def otel_env(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The `OTEL_*` settings, handed to job processes so that they export where the host does."""
    return tuple(sorted((k, v) for k, v in env.items() if k.startswith("OTEL_")))


def _protocol(env: Mapping[str, str]) -> str:
    return (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "http/protobuf").strip().lower()


def _exporter(env: Mapping[str, str]) -> SpanExporter:
    """The OTLP exporter the settings name (it reads its endpoint, headers and timeout from os.environ)."""
    if _protocol(env) == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter()


class _Counted:
    """An exporter that counts the spans it could not deliver."""

    def __init__(self, inner: SpanExporter, dropped: DropCount) -> None:
        self.inner, self.dropped = inner, dropped

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        from opentelemetry.sdk.trace.export import SpanExportResult

        try:
            result = self.inner.export(spans)
        except Exception:  # an exporter bug must not end the batch thread
            result = SpanExportResult.FAILURE
        if result is not SpanExportResult.SUCCESS:
            self.dropped.add(len(spans))
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))


class DropCount:
    """Spans not delivered: refused by a full queue or failed to export. Written by the batch thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self, n: int) -> None:
        with self._lock:
            self.value += n


def new_provider(env: Mapping[str, str], resource: Mapping[str, str], dropped: DropCount) -> TracerProvider:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    attributes = {"service.name": env.get("OTEL_SERVICE_NAME") or "agenthost", **resource}
    # no exit hook of the SDK's own: its unbounded flush would hold a process's exit (close_within bounds it)
    provider = TracerProvider(resource=Resource.create(attributes), shutdown_on_exit=False)
    provider.add_span_processor(_counting_batch()(_Counted(_exporter(env), dropped), dropped))
    return provider


@functools.cache
def _counting_batch() -> type[Any]:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    class CountingBatch(BatchSpanProcessor):
        """The SDK's batch processor (bounded queue, its own thread), counting what a full queue refuses."""

        def __init__(self, exporter: SpanExporter, dropped: DropCount) -> None:
            super().__init__(exporter)  # OTEL_BSP_MAX_QUEUE_SIZE and the other OTEL_BSP_* apply
            self._dropped = dropped

        def on_end(self, span: ReadableSpan) -> None:
            inner = getattr(self, "_batch_processor", None)  # the SDK's queue, where this SDK version has it
            queue, limit = getattr(inner, "_queue", None), getattr(inner, "_max_queue_size", None)
            if queue is not None and limit is not None and len(queue) >= limit:
                self._dropped.add(1)  # the SDK drops the oldest span to take this one
            super().on_end(span)

    return CountingBatch


def _installed() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("opentelemetry.sdk", "opentelemetry.exporter"))


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
        self._provider: TracerProvider | None = None
        if self.on and not _installed():
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
            logger.info("tracing: %s spans over OTLP (%s) to %s", SPAN_NAME, _protocol(env),
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
        if not enabled(dict(env)) or not _installed():
            return
        from opentelemetry import trace

        os.environ.update(dict(env))  # the exporter reads its endpoint, headers and timeout there
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
        """Send the job's last spans, within FLUSH_BOUND: an endpoint that does not answer never holds the job
        process past its shutdown timeout."""
        if self.provider is not None:
            close_within(self.provider, FLUSH_BOUND)
            self.provider = None


def close_within(provider: TracerProvider, bound: float) -> bool:
    """Flush and shut `provider` down on a thread of its own, waiting at most `bound` seconds (the SDK's flush
    does not keep its timeout: its export retries for as long as the exporter's own timeout); False when it had
    not finished, and the spans it held are given up."""
    import threading

    def close() -> None:
        try:
            provider.force_flush(int(bound * 1000))
            provider.shutdown()
        except Exception as exc:  # an exporter's failure is no reason to fail the process
            logger.debug("tracing: closing the exporter failed: %s", exc)

    closing = threading.Thread(target=close, name="agenthost-trace-flush", daemon=True)
    closing.start()
    closing.join(bound)
    return not closing.is_alive()
