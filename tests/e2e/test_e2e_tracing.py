"""End to end: OpenTelemetry traces of jobs, set only by OTEL_* variables, into a real Jaeger.

Every job has its `agenthost.job` span from the host, whatever its end (a normal end, its process killed, the
kernel's memory limit, its offer refused); a job's own spans, and livekit-agents', join that trace; the host's
log lines about the job carry its trace id.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator

import pytest

from host.testing.harness import ROOT, Client, JaegerServer, agent_file, dispatch, job_in_new_room, new_room
from host.testing.scrape import get, metric

pytest.importorskip("opentelemetry.sdk", reason="needs the extra: pip install 'agenthost[tracing]'")

TEST_AGENTS = ROOT / "tests" / "agents"


@pytest.fixture(scope="module")
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JaegerServer]:
    server = JaegerServer(tmp_path_factory.mktemp("jaeger"))
    server.start()
    yield server
    server.stop()


def otel(jaeger: JaegerServer, service: str) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": jaeger.otlp_http, "OTEL_SERVICE_NAME": service,
            "OTEL_BSP_SCHEDULE_DELAY": "200"}


def log_event(log: dict) -> str:
    return next(field["value"] for field in log["fields"] if field["key"] == "event")


def log_fields(log: dict) -> dict:
    return {field["key"]: field["value"] for field in log["fields"]}


def by_job(spans: list[dict]) -> dict[str, dict]:
    return {s["tags"]["agenthost.job.id"]: s for s in spans if "agenthost.job.id" in s["tags"]}


async def test_every_job_has_its_span_with_its_outcome(livekit_server, start_host, tmp_path, jaeger):
    agents = tmp_path / "agents"
    agent_file(agents, "traced", f"entrypoint: {TEST_AGENTS / 'traced.py'}:entrypoint\n"
                                 "metadata: {schema: {type: object, required: [user]}}\n"
                                 "version: '2.0'\nweight: 1\n"
                                 # an agent's own env does not take its spans out of the host's trace
                                 "env: {OTEL_SERVICE_NAME: traced-own, OTEL_BSP_SCHEDULE_DELAY: '5000'}\n")
    agent_file(agents, "hog", f"entrypoint: {TEST_AGENTS / 'hog.py'}:entrypoint\n"
                              "limits: {memory_limit_mb: 400}\nshutdown: {timeout: 1s}\n")
    host = start_host(livekit_server, agents, extra_env=otel(jaeger, "agenthost-e2e-outcomes"))
    await host.wait_log(r"tracing: agenthost.job spans over OTLP \(http/protobuf\) to http://127.0.0.1:4318")
    await host.wait_log(r"registered agent traced ")
    await host.wait_log(r"registered agent hog ")

    normal = Client(livekit_server, new_room())
    normal.listen("status")
    await normal.connect()
    await dispatch(livekit_server, "traced", normal.room_name, json.dumps({"user": "ada"}))
    assert await normal.wait_text("status") == ["hello"]
    [match] = await host.wait_log(rf"job running in process \d+ .*job_id=(\S+) .*room={normal.room_name} "
                                  r".*trace_id=(\w+)")
    normal_job, trace_id = match.group(1), match.group(2)
    await normal.disconnect()
    await host.wait_log(rf"job ended .*job_id={normal_job}")

    killed = Client(livekit_server, new_room())
    killed.listen("status")
    await killed.connect()
    await dispatch(livekit_server, "traced", killed.room_name, json.dumps({"user": "bo"}))
    await killed.wait_text("status")
    [match] = await host.wait_log(rf"job running in process (\d+) .*job_id=(\S+) .*room={killed.room_name}")
    os.kill(int(match.group(1)), signal.SIGKILL)
    killed_job = match.group(2)
    await host.wait_log(rf"job failed: .*job_id={killed_job}")

    hog = await job_in_new_room(livekit_server, "hog", "status")
    [match] = await host.wait_log(r"job failed: job process killed by the kernel at limits.memory_limit_mb .*"
                                  r"job_id=(\S+)", timeout=60)
    hog_job = match.group(1)

    refused_room = new_room()
    await dispatch(livekit_server, "traced", refused_room, json.dumps({"nobody": 1}))
    [match] = await host.wait_log(rf"refused job: .*job_id=(\S+) .*room={refused_room}")
    refused_job = match.group(1)

    spans = by_job(await jaeger.spans("agenthost-e2e-outcomes", "agenthost.job", count=4))
    assert {normal_job, killed_job, hog_job, refused_job} <= set(spans), sorted(spans)
    first = spans[normal_job]
    tags = first["tags"]
    assert first["trace"] == trace_id and tags["agenthost.outcome"] == "ok"
    assert tags["agenthost.agent"] == "traced" and tags["agenthost.room"] == normal.room_name
    assert tags["agenthost.agent.version"] == "2.0"
    assert tags["agenthost.dispatch.id"].startswith("AD_") and tags["agenthost.worker.id"].startswith("AW_"), tags
    assert tags["agenthost.exit.code"] == 0 and "agenthost.exit.signal" not in tags
    assert tags["agenthost.cpu.seconds"] > 0, tags  # its process's own work, read where it was measured
    peak = tags.get("agenthost.memory.peak_bytes", tags.get("agenthost.memory.peak_rss_bytes"))
    assert isinstance(peak, int) and peak > 1024 * 1024, tags
    events = {log_event(log): log_fields(log) for log in first["logs"]}
    assert list(events)[:2] == ["offered", "metadata checked"] and list(events)[-1] == "exited"
    for event in ("accepted", "assigned", "process taken", "entrypoint started"):
        assert event in events
    assert events["metadata checked"]["agenthost.valid"] is True
    assert isinstance(events["process taken"]["agenthost.warm"], bool)
    assert events["exited"]["agenthost.shutdown_reason"] == "participants_left"
    assert spans[killed_job]["tags"]["agenthost.outcome"] == "process_exited"
    assert spans[killed_job]["tags"]["agenthost.exit.signal"] == "SIGKILL"
    assert spans[hog_job]["tags"]["agenthost.outcome"] == "memory_limit"
    assert spans[refused_job]["tags"]["agenthost.outcome"] == "refused_invalid_metadata"
    refused = {log_event(log): log_fields(log) for log in spans[refused_job]["logs"]}
    assert refused["metadata checked"]["agenthost.valid"] is False
    assert refused["refused"]["agenthost.reason"] == "invalid_metadata"
    # the job's own span (agent code, OpenTelemetry's API, no setup of its own) is in the job's trace
    trace = await jaeger.spans("", trace_id=trace_id, count=2)
    assert "agent.work" in {s["operationName"] for s in trace}
    await hog.disconnect()
    await killed.disconnect()


async def test_a_livekit_agents_jobs_spans_share_its_trace(livekit_server, start_host, tmp_path, jaeger):
    pytest.importorskip("livekit.agents")
    host = start_host(livekit_server, ROOT / "agents.d" / "voice.yaml",
                      extra_env=otel(jaeger, "agenthost-e2e-lkagents"))
    await host.wait_log(r"registered agent voice ")
    client = Client(livekit_server, new_room())
    client.listen("lk.transcription")
    await client.connect()
    await dispatch(livekit_server, "voice", client.room_name, json.dumps({"user": "cy"}))
    await client.wait_participant("agent-")
    for _ in range(10):  # its RoomIO may not listen yet when it has joined
        await client.room.local_participant.send_text("hi", topic="lk.chat")
        try:
            await client.wait_text("lk.transcription", 1, timeout=3.0)
            break
        except AssertionError:
            continue
    [match] = await host.wait_log(rf"job running in process \d+ .*room={client.room_name} .*trace_id=(\w+)")
    trace_id = match.group(1)
    await client.disconnect()
    await host.wait_log(rf"job ended .*room={client.room_name}")
    await jaeger.spans("", "agenthost.job", trace_id=trace_id)  # the host's, sent once the process exited
    trace = await jaeger.spans("", trace_id=trace_id)
    names = {s["operationName"] for s in trace}
    assert "agenthost.job" in names and names & {"job_entrypoint", "agent_session"}, names
    assert {s["trace"] for s in trace} == {trace_id}


async def test_spans_a_job_cannot_deliver_never_hold_it_and_are_counted(livekit_server, start_host, tmp_path):
    """An endpoint nobody listens on and a small export queue: the job makes its spans and goes on at once, and
    what it could not deliver is counted by the host, beside the host's own."""
    agents = tmp_path / "agents"
    agent_file(agents, "spanner", f"entrypoint: {TEST_AGENTS / 'spanner.py'}:entrypoint\n")
    host = start_host(livekit_server, agents, extra_env={
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
        "OTEL_BSP_MAX_QUEUE_SIZE": "16", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "16", "OTEL_BSP_SCHEDULE_DELAY": "100"})
    base = await host.http_base()
    await host.wait_log(r"registered agent spanner")
    client = await job_in_new_room(livekit_server, "spanner", "status")  # "done": 500 spans did not hold it
    dropped = 0.0
    for _ in range(100):  # the job says its count in its next report, every second
        text = (await get(base + "/metrics"))[1]
        dropped = metric(text, "agenthost_trace_spans_dropped_total", process="job")
        if dropped >= 400:
            break
        await asyncio.sleep(0.1)
    assert dropped >= 400, text  # at most 16 queued, the rest refused; and those queued failed to export
    await client.disconnect()
    await host.wait_log(rf"job ended .*room={client.room_name}")
    for _ in range(100):  # the host's own span of the job fails to export too
        if metric((await get(base + "/metrics"))[1], "agenthost_trace_spans_dropped_total", process="host") >= 1:
            break
        await asyncio.sleep(0.1)
    assert metric((await get(base + "/metrics"))[1], "agenthost_trace_spans_dropped_total", process="host") >= 1

