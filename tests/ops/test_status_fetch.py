"""`agenthost status` against hosts that answer badly: a deadline, a size cap, bad bodies as error lines, and
what it prints escaped."""

import http.server
import json
import threading
import time
from pathlib import Path

import pytest

from host.ops.status import printable, render_status
from host.ops.status_fetch import StatusError, fetch_status
from host.testing.cli import agenthost

ROOT = Path(__file__).resolve().parents[2]
DOC = {"host": {"version": "0", "pid": 1, "started_at": None, "draining": False, "cpu_load": 0.1,
                "url": "ws://x"}, "agents": [],
       "jobs": [{"id": "AJ_1", "agent": "a", "room": "evil\x1b]0;owned\x07\nroom", "state": "running", "pid": 2,
                 "started_at": None, "memory_mb": None}]}


class Server:
    def __init__(self, handler) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                handler(self)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/status"

    def close(self):
        self.httpd.shutdown()


def answer(body: bytes, status: int = 200):
    def handler(req):
        req.send_response(status)
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)
    return handler


def test_what_a_host_reports_is_printed_escaped():
    text = render_status(DOC)
    assert "\x1b" not in text and "\x07" not in text
    assert "evil\\x1b]0;owned\\x07\\nroom" in text
    assert printable("x" * 500).endswith("...") and len(printable("x" * 500)) == 123


def test_a_server_that_drips_its_answer_meets_the_deadline():
    def drip(req):
        req.send_response(200)
        req.send_header("Content-Length", "1000")
        req.end_headers()
        for _ in range(100):
            req.wfile.write(b" ")
            req.wfile.flush()
            time.sleep(0.2)
    server = Server(drip)
    started = time.monotonic()
    with pytest.raises(StatusError, match="no whole answer within 1 s"):
        fetch_status(server.url, None, deadline=1.0)
    assert time.monotonic() - started < 3
    server.close()


def test_a_huge_answer_is_cut_at_the_limit():
    server = Server(answer(b"[" + b"0," * 600_000 + b"0]"))
    with pytest.raises(StatusError, match="an answer over 1000000 bytes"):
        fetch_status(server.url, None, limit=1_000_000)
    server.close()


@pytest.mark.parametrize(("body", "error"), [
    (b"[" * 100_000 + b"]" * 100_000, "not a status document: nested too deeply"),
    (b"<html>", "not a status document: not JSON"),
    (b'{"host": {}}', "not a status document: no host, agents and jobs"),
])
def test_bad_bodies_are_errors(body, error):
    server = Server(answer(body))
    with pytest.raises(StatusError, match=error):
        fetch_status(server.url, None)
    server.close()


def test_a_wrong_token_says_so():
    server = Server(answer(b"{}", 401))
    with pytest.raises(StatusError, match=r"HTTP 401 .*wrong or missing --http-token"):
        fetch_status(server.url, "nope")
    server.close()


def test_the_cli_turns_a_document_of_another_shape_into_an_error_line():
    body = json.dumps({"host": {"version": 1}, "agents": [], "jobs": []}).encode()
    server = Server(answer(body))
    address = server.url.removeprefix("http://").removesuffix("/status")
    r = agenthost("status", "--http", address)
    server.close()
    assert r.returncode == 3 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"agenthost: cannot read {server.url}: not a status document (KeyError")


def test_a_fetch_given_up_leaves_nothing_running_behind():
    """`agenthost top` reads /status every second: a host that never finishes its answer must not pile up a
    reader per read."""
    hold = threading.Event()

    def never(req):
        req.send_response(200)
        req.send_header("Content-Length", "1000")
        req.end_headers()
        hold.wait(30)
    server = Server(never)
    before = threading.active_count()
    try:
        for _ in range(3):
            with pytest.raises(StatusError, match=r"no whole answer within 0\.3 s"):
                fetch_status(server.url, None, deadline=0.3)
        # the server's three handler threads are still there, waiting; no reader of ours is
        assert threading.active_count() <= before + 3
    finally:
        hold.set()
        server.close()
