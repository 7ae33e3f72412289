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

from host.tracing.export import FLUSH_BOUND, DropCount, close_within
from host.tracing.settings import JOB_MODULES, enabled, otel_env
from host.tracing.spans import SPAN_NAME, HostTracing, JobSpan, JobTracing, TracingSettingsError

__all__ = ["FLUSH_BOUND", "JOB_MODULES", "SPAN_NAME", "DropCount", "HostTracing", "JobSpan", "JobTracing",
           "TracingSettingsError", "close_within", "enabled", "otel_env"]
