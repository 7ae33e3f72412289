"""A process's output as the host logs it: its records again, its other lines as they are, bounded."""

import asyncio
import json
import logging
import os

from host.process.output import LINES_PER_SECOND, MAX_LINE, ProcessOutput, record_from_line

FIELDS = {"agent": "a", "pid": 7}


def test_a_json_record_is_logged_again_with_the_hosts_fields_over_its_own():
    line = json.dumps({"time": 1.5e9, "level": "warning", "logger": "agenthost.job", "message": "job started",
                       "agent": "someone-else", "pid": 1, "room": "r1"})
    record = record_from_line(line, FIELDS)
    assert (record.name, record.levelno, record.getMessage()) == ("agenthost.job", logging.WARNING, "job started")
    assert record.fields == {"agent": "a", "pid": 7, "room": "r1"}


def test_a_process_cannot_log_as_the_host_or_register_loggers():
    as_host = record_from_line(json.dumps({"level": "info", "logger": "agenthost.host", "message": "x"}), FIELDS)
    assert as_host.name == "agenthost.job.agenthost.host"
    forged = record_from_line(json.dumps({"level": "info", "logger": "a\n05:00 INFO agenthost.host", "message": "x"}),
                              FIELDS)
    assert forged.name == "agenthost.output"
    traced = record_from_line(json.dumps({"level": "error", "logger": "x", "message": "m",
                                          "exception": "Traceback\n05:00:00.000 INFO    agenthost.host: forged"}),
                              FIELDS)
    assert traced.exc_text == "    Traceback\n    05:00:00.000 INFO    agenthost.host: forged"


def test_any_other_line_is_logged_as_it_is():
    record = record_from_line("[2026 WARN livekit::rtc_engine] resuming", FIELDS)
    assert (record.name, record.getMessage(), record.fields) == ("agenthost.output",
                                                                 "[2026 WARN livekit::rtc_engine] resuming", FIELDS)


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_lines_are_cut_and_a_flood_is_counted_and_said_once():
    handler = Collect()
    logging.getLogger("agenthost.output").addHandler(handler)
    read_end, write_end = os.pipe()
    output = ProcessOutput(read_end, dict(FIELDS))
    output.start()
    try:
        os.write(write_end, b"y" * (MAX_LINE + 500) + b"\nafter\n")
        flood = b"".join(f"line {i}\n".encode() for i in range(LINES_PER_SECOND + 50))
        os.write(write_end, flood)
        os.close(write_end)
        for _ in range(200):
            if output.closed and any("dropped" in r.getMessage() for r in handler.records):
                break
            await asyncio.sleep(0.02)
        messages = [r.getMessage() for r in handler.records]
        assert messages[0] == "y" * MAX_LINE + " ... (line cut)" and messages[1] == "after"
        assert sum(m.startswith("line ") for m in messages) == LINES_PER_SECOND - 2
        [said] = [m for m in messages if "dropped" in m]
        assert said == f"dropped 52 line(s) of output (more than {LINES_PER_SECOND} a second)"
    finally:
        logging.getLogger("agenthost.output").removeHandler(handler)
        output.close()


async def test_a_flood_beyond_the_seconds_lines_is_counted_without_reading_each_line():
    """64 KiB of empty lines at a time: past the second's budget the rest are counted in bulk (the host's
    loop reads no line of them), and all are said dropped."""
    handler = Collect()
    logging.getLogger("agenthost.output").addHandler(handler)
    read_end, write_end = os.pipe()
    output = ProcessOutput(read_end, dict(FIELDS))
    emitted = 0
    real_emit = output._emit

    def counting_emit(raw: bytes, cut: bool = False) -> None:
        nonlocal emitted
        emitted += 1
        real_emit(raw, cut)
    output._emit = counting_emit  # type: ignore[method-assign]
    try:
        for _ in range(16):
            output._take(b"\n" * 65536)
        output._say_dropped()
        assert emitted <= LINES_PER_SECOND + 1  # one each, until the budget is spent and one is dropped
        [said] = [r.getMessage() for r in handler.records if "dropped" in r.getMessage()]
        assert said == f"dropped {16 * 65536 - LINES_PER_SECOND} line(s) of output (more than {LINES_PER_SECOND} " \
                       "a second)"
    finally:
        logging.getLogger("agenthost.output").removeHandler(handler)
        output.close()
        os.close(write_end)
