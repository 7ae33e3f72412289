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
