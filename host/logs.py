"""Log formatting for the host and its job processes: text or one JSON object a line.

Job processes add their context (agent, job id, room, pid, worker id, the agent's
`log_fields` and `ctx.log_context_fields`) to every record through `JobFields`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "fields"}


class JobFields(logging.Filter):
    """Adds the job's context fields to every record; `extra` is read at log time."""

    def __init__(self, fields: Mapping[str, Any], extra: Callable[[], Mapping[str, Any]] | None = None) -> None:
        super().__init__()
        self.fields = dict(fields)
        self.extra = extra

    def filter(self, record: logging.LogRecord) -> bool:
        merged = dict(self.fields)
        if self.extra is not None:
            merged.update(self.extra())
        merged.update(getattr(record, "fields", {}) or {})
        record.fields = merged
        return True


def rtc_logs_to_python(environ: Mapping[str, str]) -> bool:
    """Whether the rtc library's log records go to Python (where a process shows them): when LIVEKIT_RTC_DEBUG
    asks for them, as the rtc client reads it."""
    return environ.get("LIVEKIT_RTC_DEBUG", "").strip().lower() in ("true", "1")


def job_fields(agent: str, job_id: str, dispatch_id: str = "", room: str = "") -> dict[str, Any]:
    """The fields that name a job in every host log line about it."""
    fields: dict[str, Any] = {"agent": agent, "job_id": job_id}
    if dispatch_id:
        fields["dispatch_id"] = dispatch_id
    if room:
        fields["room"] = room
    return fields


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """A record's fields: its `extra` keys, and those a job process or `JobFields` set."""
    out = dict(getattr(record, "fields", {}) or {})
    for key, value in vars(record).items():
        if key not in _STANDARD and not key.startswith("_"):
            out[key] = value
    return out


MAX_FIELD = 200  # characters of one field's value in a log line (names and ids from clients can be long)
MAX_MESSAGE = 8000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def bounded(value: object, limit: int = MAX_FIELD) -> str:
    """`value` as one line of at most `limit` characters: control characters escaped (a room name with a
    newline cannot forge a log line), the rest cut with its length said."""
    text = _CONTROL.sub(lambda m: m.group(0).encode("unicode_escape").decode(), str(value))
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}"
        line = f"{ts} {record.levelname:<7} {record.name}: {bounded(record.getMessage(), MAX_MESSAGE)}"
        fields = record_fields(record)
        if fields:
            line += " " + " ".join(f"{bounded(k)}={bounded(v)}" for k, v in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:  # a job process's record, logged again by the host (host.process.output)
            line += "\n" + record.exc_text
        return line


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": _cut(record.getMessage(), MAX_MESSAGE),
        }
        body.update({k: _cut(v, MAX_FIELD) if isinstance(v, str) else v for k, v in record_fields(record).items()})
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            body["exception"] = record.exc_text
        return json.dumps(body, default=str)


def setup(fmt: str = "text", level: int = logging.INFO, job_filter: JobFields | None = None) -> None:
    """Send every log record to stderr in `fmt` ("text" or "json"), through `job_filter` if given. In a process
    forked from one set up alike (a job process from its template), only the filter changes."""
    formatter = JsonFormatter if fmt == "json" else TextFormatter
    root = logging.getLogger()
    handler = root.handlers[0] if len(root.handlers) == 1 else None
    if not (isinstance(handler, logging.StreamHandler) and handler.stream is sys.stderr
            and type(handler.formatter) is formatter):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(formatter())
        root.handlers[:] = [handler]
    handler.filters[:] = [job_filter] if job_filter is not None else []
    _set_level(root, level)
    for noisy in ("livekit", "aiohttp", "asyncio", "watchfiles"):
        _set_level(logging.getLogger(noisy), max(level, logging.WARNING))


def _set_level(logger: logging.Logger, level: int) -> None:
    if logger.level != level:  # setting it clears the cache of every logger: a forked process would copy them all
        logger.setLevel(level)
