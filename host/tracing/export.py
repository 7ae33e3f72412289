"""Exporting spans off the caller's thread, from a bounded queue, counting what is not delivered, and closing an
exporter within a bound."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from host.tracing.settings import exporter

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

logger = logging.getLogger("agenthost.tracing")

FLUSH_BOUND = 2.0  # seconds a process spends, at most, sending its last spans


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
    provider.add_span_processor(_counting_batch()(_Counted(exporter(env), dropped), dropped))
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


def close_within(provider: TracerProvider, bound: float) -> bool:
    """Flush and shut `provider` down on a thread of its own, waiting at most `bound` seconds (the SDK's flush
    does not keep its timeout: its export retries for as long as the exporter's own timeout); False when it had
    not finished, and the spans it held are given up."""
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
