"""What every command shares: metadata files, tokens, durations."""

from host.cli.common import is_server_url
from host.testing.cli import agenthost


def test_a_metadata_file_is_read_up_to_the_bound():
    r = agenthost("validate", "--no-imports", "tests/fixtures/good", "--metadata", "ok", "@/dev/zero")
    assert r.returncode == 2
    assert "'/dev/zero' is over the metadata limit of 65536 bytes" in r.stderr


def test_a_token_and_a_token_file_together_are_refused(tmp_path):
    (tmp_path / "token").write_text("t\n")
    r = agenthost("status", "--http", "127.0.0.1:9", "--http-token", "a", "--http-token-file", str(tmp_path / "token"))
    assert r.returncode == 2
    assert "give --http-token or --http-token-file (or their variables), not both" in r.stderr


def test_durations_on_the_command_line():
    r = agenthost("run", "--drain-timeout", "soon", "tests/fixtures/good")
    assert r.returncode == 2
    assert "'soon' is not a duration (seconds, or a number with ms, s or m: 500ms, 60s, 1.5m)" in r.stderr
    r = agenthost("validate", "--import-timeout", "20s", "tests/fixtures/good")
    assert r.returncode == 0, r.stdout + r.stderr


def test_an_ipv6_host_is_put_back_in_brackets_in_the_address_read():
    from host.cli.common import http_base

    assert http_base("[::1]:8081", "--http") == "http://[::1]:8081"
    assert http_base("127.0.0.1:8081", "--http") == "http://127.0.0.1:8081"
    assert http_base(":8081", "--http") == "http://127.0.0.1:8081"


def test_a_server_url_is_a_ws_or_http_url_with_a_host_whatever_else_it_carries():
    for url in ("ws://127.0.0.1:7880", "wss://lk.example.com", "http://localhost:7880/", "https://h/path",
                "ws://[::1]:7880", "WS://127.0.0.1:7880", "wss://user:pass@host:443"):
        assert is_server_url(url), url
    for url in ("notaurl", "127.0.0.1:7880", "ws://", "ws://h:port", "ws://[::1", "ftp://h", "unix:///tmp/s"):
        assert not is_server_url(url), url
