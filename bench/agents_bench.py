"""The same livekit-agents AgentSession module (examples/voice_agent.py) served by agenthost
(`api: livekit-agents`) and by livekit-agents' own agent server, against the same livekit-server.

Root needed (a private network namespace). Both sides keep two prewarmed processes. Measured:
- start: from launching to registration with the server;
- dispatch -> listening: from creating a dispatch (client already in the room) to the agent participant's
  `lk.agent.state` attribute reading `listening`, over ROUNDS sequential jobs, alternating between the two sides;
- text -> answer: from sending a text on `lk.chat` to the agent's answer arriving on `lk.transcription`;
- memory: PSS of the whole process tree, idle and with JOBS AgentSession jobs running at once.
Usage: python bench/agents_bench.py [ROUNDS] [JOBS]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

from job_bench import SETTLE, Side, print_table, running_breakdown, tree_pss

from host.testing.harness import Client, LiveKitServer, dispatch, new_room, private_server

ROOT = Path(__file__).resolve().parent.parent
PEER = Path(__file__).resolve().parent / "peer"


async def listening(server: LiveKitServer, agent: str) -> tuple[float, Client]:
    """A job of `agent` in a new room, once the agent says it listens; the ms it took from the dispatch."""
    client = Client(server, new_room())
    client.listen("lk.transcription")
    await client.connect()
    start = time.perf_counter()
    await dispatch(server, agent, client.room_name, '{"user": "bench"}')
    deadline = time.monotonic() + 60
    while not any(p.attributes.get("lk.agent.state") == "listening" for p in client.room.remote_participants.values()):
        if time.monotonic() > deadline:
            raise SystemExit(f"{agent}: no agent listening in {client.room_name} after 60s")
        await asyncio.sleep(0.005)
    return (time.perf_counter() - start) * 1000, client


async def answer_ms(client: Client) -> float:
    start = time.perf_counter()
    await client.room.local_participant.send_text("hello", topic="lk.chat")
    await client.wait_text("lk.transcription", 1, timeout=30)
    return (time.perf_counter() - start) * 1000


async def latencies(sides: list[Side], server: LiveKitServer, rounds: int) -> None:
    """Sessions one after another, alternating between the sides, so that both meet the same server state."""
    listen_ms: dict[str, list[float]] = {side.name: [] for side in sides}
    answers: dict[str, list[float]] = {side.name: [] for side in sides}
    for _ in range(rounds):
        for side in sides:
            ms, client = await listening(server, side.agent)
            listen_ms[side.name].append(ms)
            answers[side.name].append(await answer_ms(client))
            await client.disconnect()
            await asyncio.sleep(1.0)  # the job ends, the pool refills
    for side in sides:
        side.figures["dispatch to listening, median (ms)"] = statistics.median(listen_ms[side.name])
        side.figures["dispatch to listening, max (ms)"] = max(listen_ms[side.name])
        side.figures["text to answer, median (ms)"] = statistics.median(answers[side.name])


async def memory(side: Side, server: LiveKitServer, jobs: int) -> None:
    assert side.proc is not None
    await asyncio.sleep(SETTLE)
    idle = tree_pss(side.proc.pid)
    side.figures["memory idle, 2 prewarmed (MB)"] = idle / 2**20
    clients = [c for _ms, c in await asyncio.gather(*(listening(server, side.agent) for _ in range(jobs)))]
    await asyncio.sleep(SETTLE)  # sessions running, pool refilled
    loaded = tree_pss(side.proc.pid)
    running_breakdown(side, jobs)
    side.figures[f"memory with {jobs} sessions (MB)"] = loaded / 2**20
    side.figures["memory per running session (MB)"] = (loaded - idle) / jobs / 2**20
    for c in clients:
        await c.disconnect()


async def run(rounds: int, jobs: int) -> int:
    server = private_server("agents-bench")
    work = server.workdir
    config = work / "voice-bench.yaml"
    config.write_text(f"name: voice-bench\napi: livekit-agents\nentrypoint: {ROOT / 'examples/voice_agent.py'}:server\n"
                      "processes: {idle: 2}\n")
    ours = Side("agenthost", "voice-bench", [sys.executable, "-m", "host", "run", "--http", "127.0.0.1:0",
                                             "--load-threshold", "0", str(config)],
                r"registered agent voice-bench", ROOT, work / "agenthost.log")
    peer = Side("livekit-agents", "voice-peer", [sys.executable, str(PEER / "voice_peer.py"), "start"],
                r"registered worker", ROOT, work / "peer.log")
    try:
        for side in (ours, peer):
            await side.start(server.env())
        await asyncio.sleep(SETTLE)
        await latencies([ours, peer], server, rounds)
        for side in (ours, peer):
            await memory(side, server, jobs)
    finally:
        ours.stop()
        peer.stop()
        server.stop()
    print_table(ours, peer)
    print(f"({rounds} sequential sessions, {jobs} concurrent sessions; same server, same AgentSession module, "
          "two prewarmed processes each)")
    return 0


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    sys.exit(asyncio.run(run(args[0] if args else 5, args[1] if len(args) > 1 else 4)))
