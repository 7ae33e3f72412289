"""Each call's recent log lines, as the host keeps them for /logs, and read through its HTTP server."""

import logging

import aiohttp

from host.ops import joblogs
from host.ops.httpserver import HttpOptions, HttpServer
from host.ops.joblogs import JobLogs
from host.ops.status_fetch import StatusError, fetch_logs


def kept() -> tuple[JobLogs, logging.Logger]:
    logs = JobLogs()
    logger = logging.getLogger("agenthost.test-joblogs")
    logger.handlers[:] = [logs]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logs, logger


def test_a_rooms_lines_come_in_order_with_those_its_job_wrote_and_nothing_else():
    logs, logger = kept()
    logger.info("job offer", extra={"agent": "a", "job_id": "AJ_1", "room": "r1"})
    logger.info("not about a job")
    logger.info("job offer", extra={"agent": "a", "job_id": "AJ_2", "room": "r2"})
    logger.warning("agent says hi\x1b[2J", extra={"fields": {"job_id": "AJ_1"}})  # a job's own line: no room
    answer = logs.after(0, room="r1")
    assert [(x["job_id"], x["level"], x["message"]) for x in answer["lines"]] == [
        ("AJ_1", "info", "job offer"), ("AJ_1", "warning", "agent says hi\\x1b[2J")]
    assert answer["next"] == answer["lines"][-1]["seq"]
    assert logs.after(answer["next"], room="r1") == {"lines": [], "next": answer["next"]}  # nothing new
    logger.info("job ended", extra={"job_id": "AJ_1", "room": "r1"})
    assert [x["message"] for x in logs.after(answer["next"], room="r1")["lines"]] == ["job ended"]
    assert [x["message"] for x in logs.after(0, job_id="AJ_2")["lines"]] == ["job offer"]
    assert logs.after(0, room="elsewhere")["lines"] == []


def test_the_lines_kept_are_bounded_per_job_and_in_jobs_and_a_job_that_goes_on_logging_is_kept(monkeypatch):
    monkeypatch.setattr(joblogs, "LINES_PER_JOB", 3)
    monkeypatch.setattr(joblogs, "JOBS_KEPT", 2)
    logs, logger = kept()
    logger.info("job offer", extra={"job_id": "AJ_1", "room": "r1"})
    for n in range(5):  # its own lines name no room: its room is still known
        logger.info("line %d", n, extra={"fields": {"job_id": "AJ_1"}})
    assert [x["message"] for x in logs.after(0, room="r1")["lines"]] == ["line 2", "line 3", "line 4"]
    logger.info("second", extra={"job_id": "AJ_2", "room": "r2"})
    logger.info("line 5", extra={"fields": {"job_id": "AJ_1"}})  # AJ_1 logs again: the newest
    logger.info("third", extra={"job_id": "AJ_3", "room": "r3"})  # the job that logged longest ago goes
    assert logs.after(0, room="r2")["lines"] == []
    assert [x["message"] for x in logs.after(0, room="r1")["lines"]] == ["line 3", "line 4", "line 5"]
    logger.info("a %s line", "long" * 1000, extra={"job_id": "AJ_3"})
    assert len(logs.after(0, job_id="AJ_3")["lines"][-1]["message"]) < joblogs.MAX_LINE + 40


def test_an_answer_is_bounded_in_bytes_and_the_reader_goes_on_from_where_it_stopped(monkeypatch):
    monkeypatch.setattr(joblogs, "MAX_ANSWER_BYTES", 2000)
    logs, logger = kept()
    for n in range(40):
        logger.info("line %d %s", n, "x" * 100, extra={"job_id": "AJ_1", "room": "r1"})
    seen, after = [], 0
    for _ in range(40):
        answer = logs.after(after, room="r1")
        if not answer["lines"]:
            break
        assert len(answer["lines"]) < 40
        seen += [x["message"].split()[1] for x in answer["lines"]]
        after = answer["next"]
    assert seen == [str(n) for n in range(40)]


def test_a_bad_log_call_never_breaks_the_host(capsys):
    _logs, logger = kept()
    logger.info("%d", "not a number", extra={"job_id": "AJ_1", "room": "r1"})  # said by logging, not raised
    assert "Logging error" in capsys.readouterr().err


async def test_logs_are_served_behind_the_token_and_read_by_the_console_client():
    import asyncio

    logs, logger = kept()
    logger.info("job running", extra={"job_id": "AJ_1", "room": "a room/with ?&="})
    server = HttpServer(type("Target", (), {"job_limits": "rlimit"})(), ("127.0.0.1", 0),  # type: ignore[arg-type]
                        HttpOptions(token="s3cret"), logs)
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(base + "/logs") as r:
                assert r.status == 401
            async with session.get(base + "/logs?after=x&room=r", headers={"Authorization": "Bearer s3cret"}) as r:
                assert r.status == 400
            async with session.get(base + "/logs", headers={"Authorization": "Bearer s3cret"}) as r:
                assert r.status == 400  # which call's lines: never every call's at once
        url = base + "/logs?room=a%20room%2Fwith%20%3F%26%3D&after=0"
        lines, after = await asyncio.to_thread(fetch_logs, url, "s3cret")
        assert [x["message"] for x in lines] == ["job running"] and after == lines[0]["seq"]
        try:
            await asyncio.to_thread(fetch_logs, url, "wrong")
        except StatusError as exc:
            assert "wrong or missing --http-token" in str(exc)
        else:
            raise AssertionError("a wrong token was let through")
    finally:
        await server.close()
