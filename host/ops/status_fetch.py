"""Reading a running host over HTTP from outside (`agenthost status`, `top`, `console --logs`): its /status and
its /logs, each read whole within a deadline and a size cap, on the caller's thread, so that a host that drips its
answer or never finishes it costs nothing once it is given up."""

from __future__ import annotations

from typing import Any

from host.ops.status import StatusDocument, printable


class StatusError(Exception):
    """A host's /status could not be read whole, in time, or as a status document."""


MAX_STATUS_BYTES = 16 * 1024 * 1024
STATUS_DEADLINE = 10.0
MAX_HEAD_BYTES = 64 * 1024  # the status line and headers of an answer


def _get(url: str, token: str | None, deadline: float, limit: int) -> tuple[int, str, bytes]:
    """GET `url` (http://HOST:PORT/PATH, HTTP/1.0: the host answers once and closes): (code, reason, body)."""
    import socket
    import time
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise StatusError(f"not an http:// address: {printable(url)}")
    end = time.monotonic() + deadline
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    request = (f"GET {target} HTTP/1.0\r\nHost: {parts.netloc}\r\n"
               + (f"Authorization: Bearer {token}\r\n" if token else "") + "\r\n").encode()
    answer = bytearray()
    try:
        with socket.create_connection((parts.hostname, parts.port or 80), timeout=deadline) as sock:
            sock.sendall(request)
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    raise StatusError(f"no whole answer within {deadline:g} s")
                sock.settimeout(left)
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
                if len(answer) > limit + MAX_HEAD_BYTES:
                    raise StatusError(f"an answer over {limit} bytes")
    except TimeoutError:
        raise StatusError(f"no whole answer within {deadline:g} s") from None
    except OSError as exc:
        raise StatusError(exc.strerror or str(exc)) from exc
    head, sep, body = bytes(answer).partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
    if not sep or len(status) < 2 or not status[0].startswith("HTTP/") or not status[1].isdigit():
        raise StatusError("not an HTTP answer")
    return int(status[1]), status[2] if len(status) > 2 else "", body


def fetch_status(url: str, token: str | None, deadline: float = STATUS_DEADLINE,
                 limit: int = MAX_STATUS_BYTES) -> StatusDocument:
    """The /status document at `url`, read whole within `deadline` seconds and `limit` bytes. Read here, on this
    thread, with every wait bounded by what is left of the deadline: a host that drips its answer or never
    finishes it costs nothing once it is given up (`agenthost top` reads it again every second)."""
    import json

    code, reason, body = _get(url, token, deadline, limit)
    if code in (401, 403):
        raise StatusError(f"HTTP {code} {printable(reason)} (wrong or missing --http-token)")
    if code != 200:
        raise StatusError(f"HTTP {code} {printable(reason)}")
    if len(body) > limit:
        raise StatusError(f"an answer over {limit} bytes")
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise StatusError("not a status document: " + ("nested too deeply" if isinstance(exc, RecursionError)
                                                        else "not JSON")) from exc
    if not isinstance(doc, dict) or not {"host", "agents", "jobs"} <= set(doc):
        raise StatusError("not a status document: no host, agents and jobs")
    return doc  # type: ignore[return-value]


MAX_LOGS_BYTES = 4 * 1024 * 1024
LOGS_DEADLINE = 2.0


def fetch_logs(url: str, token: str | None, deadline: float = LOGS_DEADLINE) -> tuple[list[dict[str, Any]], int]:
    """The lines a host's /logs answers at `url` (http://HOST:PORT/logs?room=...&after=N), and the number to ask
    after next; StatusError when it cannot be read, whole and in time, as such an answer."""
    import json

    code, reason, body = _get(url, token, deadline, MAX_LOGS_BYTES)
    if code in (401, 403):
        raise StatusError(f"HTTP {code} {printable(reason)} (wrong or missing --http-token)")
    if code != 200:
        raise StatusError(f"HTTP {code} {printable(reason)}")
    try:
        doc = json.loads(body)
        lines, after = doc["lines"], int(doc["next"])
    except (ValueError, RecursionError, KeyError, TypeError) as exc:
        raise StatusError("not a /logs answer") from exc
    if not isinstance(lines, list) or not all(isinstance(line, dict) for line in lines):
        raise StatusError("not a /logs answer")
    return lines, after
