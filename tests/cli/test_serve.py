"""`agenthost run`'s refusals before it serves anything."""

from host.testing.cli import agenthost

BAD = "tests/fixtures/bad"


def test_run_refuses_an_invalid_configuration():
    r = agenthost("run", BAD)
    assert r.returncode == 1
    assert "$.limits.max_job: unknown key 'max_job'" in r.stderr and "Traceback" not in r.stderr


def test_run_says_when_its_http_port_is_taken():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = agenthost("run", "--http", f"127.0.0.1:{port}", "--url", "ws://127.0.0.1:9", "--api-key", "k",
                      "--api-secret", "s", "tests/fixtures/good")
    assert r.returncode == 1
    assert f"agenthost: cannot serve HTTP on 127.0.0.1:{port}: " in r.stderr and "Traceback" not in r.stderr


def test_run_refuses_tracing_settings_the_sdk_refuses():
    import pytest

    pytest.importorskip("opentelemetry.sdk", reason="needs the extra: pip install 'agenthost[tracing]'")
    r = agenthost("run", "--url", "ws://127.0.0.1:9", "--api-key", "k", "--api-secret", "s", "tests/fixtures/good",
                  env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_BSP_MAX_QUEUE_SIZE": "16"})
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "agenthost: tracing: the OTEL_* settings cannot be used: max_export_batch_size must be less than or " \
           "equal to max_queue_size. (" in r.stderr and "OTEL_BSP_MAX_QUEUE_SIZE=16" in r.stderr, r.stderr
