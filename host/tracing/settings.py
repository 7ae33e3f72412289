"""Which traces the OTEL_* settings ask for: whether tracing is on, the settings handed to job processes, the
OTLP exporter they name, and what a job process's tracing imports."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

# What a job process's tracing imports (the SDK, the OTLP/HTTP exporter and the HTTP stack under it): with tracing
# on, the fork server preloads them, so that a job process sets its tracing up in milliseconds while it waits for
# its job, rather than importing them for 130 ms or more. gRPC is not preloaded: it must not be loaded in a
# process that forks.
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


def protocol(env: Mapping[str, str]) -> str:
    return (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "http/protobuf").strip().lower()


def exporter(env: Mapping[str, str]) -> SpanExporter:
    """The OTLP exporter the settings name (it reads its endpoint, headers and timeout from os.environ)."""
    if protocol(env) == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter()


def installed() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("opentelemetry.sdk", "opentelemetry.exporter"))
