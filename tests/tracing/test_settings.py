"""What the OTEL_* settings ask for: whether tracing is on, what job processes are handed, the protocol."""

from host.tracing.settings import enabled, otel_env, protocol


def test_only_otel_settings_turn_it_on():
    assert not enabled({})
    assert enabled({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert enabled({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"})
    assert enabled({"OTEL_TRACES_EXPORTER": "otlp"})
    assert not enabled({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"})
    assert not enabled({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"})
    assert otel_env({"OTEL_A": "1", "PATH": "/bin", "OTEL_B": "2"}) == (("OTEL_A", "1"), ("OTEL_B", "2"))


def test_the_traces_protocol_wins_over_the_general_one_and_http_is_the_default():
    assert protocol({}) == "http/protobuf"
    assert protocol({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}) == "grpc"
    assert protocol({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": " HTTP/JSON "}) == (
        "http/json")
