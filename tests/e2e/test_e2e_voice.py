"""End to end by voice: `agenthost call` speaks to the local voice agent (examples/voice_local.py: silero VAD,
pocketsphinx, flite, a rule LLM) served by `agenthost run`, through the real server, with no network."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from pathlib import Path

import psutil
import pytest

from examples.rule_answers import answer
from host.process.priority import this_host_may_raise
from host.testing.harness import ROOT
from host.voice.speech import understood

pytest.importorskip("livekit.plugins.silero", reason="needs the extra: pip install 'agenthost[voice]'")
pytest.importorskip("pocketsphinx", reason="needs the extra: pip install 'agenthost[voice]'")

VOICE_LOCAL = ROOT / "agents.d" / "voice-local.yaml"
SAID = ["hello there", "what is your name", "how are you today", "the weather is nice"]


async def agenthost(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "host", *args, cwd=ROOT, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 300)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def serve_and_call(livekit_server, start_host, agent_file: Path, name: str, *args: str):
    """`agenthost call NAME ARGS --json` once a host serving `agent_file` registered it: (host, exit code,
    stdout, stderr)."""
    host = start_host(livekit_server, agent_file)
    await host.wait_log(rf"registered agent {name}")
    code, out, err = await agenthost("call", name, *args, "--json", "--config", str(agent_file),
                                     env={**os.environ, **livekit_server.env()})
    return host, code, out, err


def livekit_agent(tmp_path: Path, name: str, module: str) -> Path:
    """An `api: livekit-agents` agent file for `module`'s AgentServer `server`, written beside it."""
    (tmp_path / f"{name.replace('-', '_')}.py").write_text(module)
    agent = tmp_path / f"{name}.yaml"
    agent.write_text(f"name: {name}\napi: livekit-agents\nentrypoint: {name.replace('-', '_')}.py:server\n")
    return agent


def assert_answered_by_rules(turns: list[dict], said: list[str]) -> None:
    """Each turn understood by the agent and answered by voice-local's rules, after the end of speech."""
    assert [t["said"] for t in turns] == said
    for turn in turns:
        assert turn["latency_ms"] is not None and turn["latency_ms"] > 0, turn
        assert understood(turn["said"], turn["understood"] or ""), turn
        assert turn["answered"] == answer(turn["understood"]), turn


def nice_of_job_threads(host_pid: int) -> set[int]:
    """The nice values of the threads of the host's job processes: those below it running the rtc library
    (its runtime's threads, which each job process starts once ready; a template never does)."""
    seen: set[int] = set()
    for proc in psutil.Process(host_pid).children(recursive=True):
        with contextlib.suppress(psutil.Error, OSError):
            threads = [t.id for t in proc.threads()]
            names = {Path(f"/proc/{proc.pid}/task/{tid}/comm").read_text().strip() for tid in threads}
            if "tokio-rt-worker" in names:
                seen.update(os.getpriority(os.PRIO_PROCESS, tid) for tid in threads)
    return seen


async def test_call_voice_local_every_turn_understood_and_answered(livekit_server, start_host, tmp_path):
    says = [arg for text in SAID for arg in ("--say", text)]
    host = start_host(livekit_server, VOICE_LOCAL, args=("--answer-priority", "5"))
    await host.wait_log(r"registered agent voice-local")
    seen: set[int] = set()

    async def sample() -> None:  # while the call runs: the job favoured while each answer is due
        while True:
            seen.update(nice_of_job_threads(host.proc.pid))
            await asyncio.sleep(0.02)

    sampler = asyncio.ensure_future(sample())
    try:
        code, out, err = await agenthost("call", "voice-local", *says, "--record", str(tmp_path / "rec"), "--json",
                                         "--config", str(VOICE_LOCAL), env={**os.environ, **livekit_server.env()})
    finally:
        sampler.cancel()
    assert code == 0, f"exit {code}\n{out}\n{err}\n{host.log()}"
    base = os.getpriority(os.PRIO_PROCESS, 0)
    if this_host_may_raise(5):  # where the host may raise a priority: the job ran at its own, and favoured
        assert seen == {base, base - 5}, seen
    turns = json.loads(out)["turns"]
    # the agent understood the caller, answered by its rules, and the caller understood the answer
    assert_answered_by_rules(turns, SAID)
    for turn in turns:
        assert understood(turn["answered"], turn["heard"] or ""), turn
    assert sorted(p.name for p in (tmp_path / "rec").iterdir()) == [f"turn-0{i}.wav" for i in range(1, 5)]
    await host.wait_log(r"job ended .*agent=voice-local")
    assert "job failed" not in host.log() and "Traceback" not in host.log()


async def test_call_an_agent_that_answers_while_the_caller_speaks(livekit_server, start_host, tmp_path):
    """An agent that is not a livekit-agents session (examples/echo.py plays back what it hears as it hears
    it): its answer starts before the end of the caller's speech, and counts as an answer. The second turn is
    a WAV as sox or ffmpeg writes one (extensible header, 24-bit stereo), spoken after the first."""
    import numpy as np

    from host.testing.wavfiles import extensible, pcm24, riff
    from host.voice.speech import SAMPLE_RATE, Synthesizer

    mono = np.frombuffer(Synthesizer().synthesize("what is your name"), dtype=np.int16)
    (tmp_path / "name.wav").write_bytes(riff(extensible(1, 2, SAMPLE_RATE, 24), pcm24(mono.tolist(), 2)))
    host, code, out, err = await serve_and_call(livekit_server, start_host, ROOT / "agents.d" / "echo.yaml", "echo",
                                                "--say", "hello there", "--wav", str(tmp_path / "name.wav"))
    assert code == 0, f"exit {code}\n{out}\n{err}\n{host.log()}"
    assert "HMAC key" not in err  # the dev server's short secret is the server's to warn of, not each token's
    turns = json.loads(out)["turns"]
    assert [t["said"] for t in turns] == ["hello there", "name.wav"]
    for turn, said in zip(turns, ["hello there", "what is your name"], strict=True):
        # answered: it spoke while the caller did (a negative latency), or just after on a slow machine
        assert turn["latency_ms"] is not None and turn["error"] is None, turn
        assert turn["understood"] is None and turn["answered"] is None, turn  # it publishes no transcripts
        assert understood(said, turn["heard"] or ""), turn  # what it played back was the caller's turn


SILENT = """\
import asyncio

from livekit import rtc


async def entrypoint(ctx):
    await ctx.connect()
    source = rtc.AudioSource(16000, 1)
    track = rtc.LocalAudioTrack.create_audio_track("voice", source)
    await ctx.room.local_participant.publish_track(
        track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
    print("silent agent published its track", flush=True)
"""


async def test_a_call_whose_agent_never_answers_says_which_turn_and_exits_1(livekit_server, start_host, tmp_path):
    (tmp_path / "silent.py").write_text(SILENT)
    (tmp_path / "silent.yaml").write_text("name: silent\nentrypoint: silent.py:entrypoint\n")
    host, code, out, err = await serve_and_call(livekit_server, start_host, tmp_path / "silent.yaml", "silent",
                                                "--say", "hello there", "--timeout", "8")
    assert code == 1, f"exit {code}\n{out}\n{err}\n{host.log()}"
    assert "silent agent published its track" in host.log()  # the agent was there, and said nothing
    assert err.strip().endswith("agenthost: turn 1 got no answer"), err
    [turn] = json.loads(out)["turns"]
    assert turn["latency_ms"] is None and turn["error"] == "no answer within 8 s of the end of speech", turn


async def test_a_call_whose_agent_is_served_by_no_host_says_so_and_exits_1(livekit_server, tmp_path):
    (tmp_path / "nobody.yaml").write_text("name: nobody-serves-me\nentrypoint: m.py:f\n")
    code, out, err = await agenthost("call", "nobody-serves-me", "--say", "hello", "--timeout", "2", "--config",
                                     str(tmp_path / "nobody.yaml"), env={**os.environ, **livekit_server.env()})
    assert code == 1, f"exit {code}\n{out}\n{err}"
    assert "no agent 'nobody-serves-me' joined the room within 2 s" in err and "agenthost run" in err, err


GREETER = """\
from livekit.agents import Agent, AgentServer, JobContext

from examples import voice_local

server = AgentServer()
server.setup_fnc = voice_local.prewarm


class Greeter(Agent):
    async def on_enter(self):
        handle = self.session.say("welcome to the test line")
        handle.add_done_callback(lambda h: print(f"greeting over, interrupted: {h.interrupted}", flush=True))


@server.rtc_session(agent_name="greeting-voice")
async def entrypoint(ctx: JobContext):
    await voice_local.local_session(ctx.proc).start(agent=Greeter(instructions="greet, then answer"), room=ctx.room,
                                                    room_options=voice_local.ROOM_OPTIONS)
"""


async def test_a_greeting_plays_out_before_the_first_turn_and_is_not_its_answer(livekit_server, start_host,
                                                                                 tmp_path):
    """A livekit-agents agent that greets as it starts (Agent.on_enter): the caller waits for the greeting to
    end, then speaks; each turn's answer is the agent's answer to it, not the greeting."""
    agent = livekit_agent(tmp_path, "greeting-voice", GREETER)
    host, code, out, err = await serve_and_call(livekit_server, start_host, agent, "greeting-voice",
                                                "--say", SAID[0], "--say", SAID[1])
    assert code == 0, f"exit {code}\n{out}\n{err}\n{host.log()}"
    turns = json.loads(out)["turns"]
    assert_answered_by_rules(turns, SAID[:2])  # its answers, not the greeting
    for turn in turns:
        assert "welcome" not in (turn["heard"] or ""), turn
    assert "greeting over, interrupted: False" in host.log()  # there was a greeting, and no turn cut into it


BLURTER = """\
from livekit.agents import Agent, AgentServer, JobContext

from examples import voice_local

server = AgentServer()
server.setup_fnc = voice_local.prewarm


@server.rtc_session(agent_name="blurting-voice")
async def entrypoint(ctx: JobContext):
    session = voice_local.local_session(ctx.proc)
    greeted = []

    def on_user_state(ev):
        if ev.new_state == "speaking" and not greeted:  # a greeting that comes late: as the caller begins
            greeted.append(session.say("welcome to the test line", allow_interruptions=False))
            greeted[0].add_done_callback(lambda h: print("late greeting over", flush=True))

    session.on("user_state_changed", on_user_state)
    await session.start(agent=Agent(instructions="answer"), room=ctx.room, room_options=voice_local.ROOM_OPTIONS)
"""


async def test_a_greeting_that_comes_while_the_first_turn_is_said_is_not_its_answer(livekit_server, start_host,
                                                                                    tmp_path):
    """A livekit-agents agent that starts talking on its own as the caller begins (a greeting that came late,
    not to be interrupted, so the agent drops what it hears meanwhile): that is not the turn's answer; the
    turn is said again once the agent is quiet, and answered."""
    said = ["hello there the weather is nice today", SAID[1]]  # long enough for the greeting to come within it
    agent = livekit_agent(tmp_path, "blurting-voice", BLURTER)
    host, code, out, err = await serve_and_call(livekit_server, start_host, agent, "blurting-voice",
                                                "--say", said[0], "--say", said[1])
    assert code == 0, f"exit {code}\n{out}\n{err}\n{host.log()}"
    assert "late greeting over" in host.log()
    said_again = "as the caller spoke and without thinking first"
    assert said_again in err and repr(said[0]) in err, f"{out}\n{err}\n{host.log()}"
    turns = json.loads(out)["turns"]
    assert_answered_by_rules(turns, said)  # its answers, not the greeting
    for turn in turns:
        assert "welcome" not in (turn["heard"] or "") and "welcome" not in (turn["answered"] or ""), turn


AMBIENT = """\
from livekit.agents import Agent, AgentServer, AudioConfig, BackgroundAudioPlayer, BuiltinAudioClip, JobContext

from examples import voice_local

server = AgentServer()
server.setup_fnc = voice_local.prewarm


@server.rtc_session(agent_name="ambient-voice")
async def entrypoint(ctx: JobContext):
    session = voice_local.local_session(ctx.proc)
    await session.start(agent=Agent(instructions="answer"), room=ctx.room, room_options=voice_local.ROOM_OPTIONS)
    background = BackgroundAudioPlayer(ambient_sound=AudioConfig(BuiltinAudioClip.OFFICE_AMBIENCE, volume=1.0))
    await background.start(room=ctx.room, agent_session=session)
    print("background audio playing", flush=True)
"""


async def test_an_agents_background_audio_is_not_taken_for_its_answers(livekit_server, start_host, tmp_path):
    """livekit-agents' BackgroundAudioPlayer publishes a second audio track (office ambience, all the time):
    the caller hears the agent's voice on its microphone track, so each answer starts and ends with the
    agent's speech."""
    agent = livekit_agent(tmp_path, "ambient-voice", AMBIENT)
    host, code, out, err = await serve_and_call(livekit_server, start_host, agent, "ambient-voice",
                                                "--say", SAID[0], "--say", SAID[1])
    assert code == 0, f"exit {code}\n{out}\n{err}\n{host.log()}"
    assert "background audio playing" in host.log()
    turns = json.loads(out)["turns"]
    assert_answered_by_rules(turns, SAID[:2])
    for turn in turns:
        assert understood(turn["answered"], turn["heard"] or ""), turn  # the answer, without the ambience


CHANGING = """\
import asyncio

import numpy as np
from livekit import rtc

from host.context import AutoSubscribe

RATE = 16000
AFTER_FIRST_TURN = {action!r}  # "republish": its voice on a new track; "leave": out of the room


async def entrypoint(ctx):
    await ctx.connect(auto_subscribe=AutoSubscribe.AUDIO_ONLY)

    async def publish():
        source = rtc.AudioSource(RATE, 1)
        track = rtc.LocalAudioTrack.create_audio_track("voice", source)
        publication = await ctx.room.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
        return source, publication.sid

    voice = list(await publish())

    async def echo(remote):
        loud, quiet, turns = False, 0, 0
        async for event in rtc.AudioStream(remote, sample_rate=RATE, num_channels=1):
            await voice[0].capture_frame(event.frame)
            level = np.sqrt(np.mean(np.frombuffer(event.frame.data, dtype=np.int16).astype(np.float64) ** 2))
            loud, quiet = (True, 0) if level > 500 else (loud, quiet + 1)
            if loud and quiet >= 30 and turns == 0:  # 0.3 s of quiet after the caller's first turn
                turns = 1
                if AFTER_FIRST_TURN == "leave":
                    print("agent leaves the room", flush=True)
                    await ctx.room.disconnect()
                    return
                old = voice[1]
                voice[:] = await publish()  # the new track first, then the old one goes
                await ctx.room.local_participant.unpublish_track(old)
                print(f"agent's voice moved from {{old}} to {{voice[1]}}", flush=True)

    @ctx.room.on("track_subscribed")
    def on_track(track, *_):
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            asyncio.create_task(echo(track))
"""


def changing_agent(tmp_path: Path, action: str) -> Path:
    """An agent that echoes the caller, and after the first turn does `action` (see CHANGING)."""
    (tmp_path / f"{action}.py").write_text(CHANGING.format(action=action))
    agent = tmp_path / f"{action}.yaml"
    agent.write_text(f"name: {action}\nentrypoint: {action}.py:entrypoint\n")
    return agent


async def test_an_agent_that_moves_its_voice_to_a_new_track_is_heard_there(livekit_server, start_host, tmp_path):
    """An agent publishes its voice on a new microphone track (as after a reconnection) and unpublishes the
    old one: the caller hears its later answers on the new track."""
    host, code, out, err = await serve_and_call(livekit_server, start_host, changing_agent(tmp_path, "republish"),
                                                "republish", "--say", SAID[0], "--say", "how are you today",
                                                "--timeout", "8")
    assert code == 0, f"exit {code}\n{out}\n{err}\n{host.log()}"
    assert "agent's voice moved from" in host.log()
    turns = json.loads(out)["turns"]
    assert understood("how are you today", turns[1]["heard"] or ""), turns  # its echo, on the new track


async def test_an_agent_that_leaves_ends_the_call_at_once_with_the_reason(livekit_server, start_host, tmp_path):
    """The agent leaves the room after the first turn: the turn in progress (or the next) ends saying so,
    without waiting out its timeout, the rest are not spoken, and the call exits 1."""
    host, code, out, err = await serve_and_call(livekit_server, start_host, changing_agent(tmp_path, "leave"),
                                                "leave", "--say", SAID[0], "--say", SAID[1], "--say", SAID[2],
                                                "--timeout", "120")
    assert code == 1, f"exit {code}\n{out}\n{err}\n{host.log()}"
    assert "agent leaves the room" in host.log()
    first, *rest = json.loads(out)["turns"]
    assert first["error"] is None and first["latency_ms"] is not None, first
    for turn in rest:
        assert turn["latency_ms"] is None and "left the room" in turn["error"], turn
    assert rest[-1]["error"].startswith("not spoken: agent "), rest
    assert err.strip().endswith("agenthost: turns 2, 3 got no answer"), err


LAZY = """\
import asyncio

import numpy as np
from livekit import rtc


async def entrypoint(ctx):
    await ctx.connect()
    heard = asyncio.Event()

    async def listen(track):
        loud = False
        async for event in rtc.AudioStream(track, sample_rate=16000, num_channels=1):
            level = float(np.sqrt(np.mean(np.frombuffer(event.frame.data, dtype=np.int16).astype(float) ** 2)))
            loud = loud or level > 500
            if loud and level < 50:  # the caller spoke, and stopped
                heard.set()
                return

    ctx.room.on("track_subscribed", lambda track, *_: asyncio.ensure_future(listen(track))
                if track.kind == rtc.TrackKind.KIND_AUDIO else None)
    await heard.wait()
    # its voice is published only now, as it first speaks
    source = rtc.AudioSource(16000, 1)
    track = rtc.LocalAudioTrack.create_audio_track("voice", source)
    await ctx.room.local_participant.publish_track(
        track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
    print("lazy agent published its voice", flush=True)
    await asyncio.sleep(0.5)
    tone = (np.sin(np.arange(1600) / 4) * 8000).astype(np.int16)
    for _ in range(20):
        await source.capture_frame(rtc.AudioFrame(tone.tobytes(), 16000, 1, 1600))
    await asyncio.sleep(30)
"""


async def test_an_agent_that_publishes_its_voice_only_as_it_first_speaks_is_called(livekit_server, start_host,
                                                                                   tmp_path):
    """No audio track from the agent by the --timeout: the caller speaks anyway, and hears the answer on the
    track the agent publishes then."""
    (tmp_path / "lazy.py").write_text(LAZY)
    (tmp_path / "lazy.yaml").write_text("name: lazy\nentrypoint: lazy.py:entrypoint\n")
    host, code, out, err = await serve_and_call(livekit_server, start_host, tmp_path / "lazy.yaml", "lazy",
                                                "--say", "hello there", "--timeout", "10")
    assert code == 0, f"exit {code}\n{out}\n{err}\n{host.log()}"
    assert "lazy agent published its voice" in host.log()
    [turn] = json.loads(out)["turns"]
    assert turn["error"] is None and turn["latency_ms"] > 0, turn


async def test_a_call_to_an_agent_with_no_voice_says_so_in_the_turn(livekit_server, start_host, tmp_path):
    (tmp_path / "mute.yaml").write_text(f"name: mute\nentrypoint: {ROOT / 'tests/agents/keeper.py'}:entrypoint\n")
    host, code, out, err = await serve_and_call(livekit_server, start_host, tmp_path / "mute.yaml", "mute",
                                                "--say", "hello there", "--timeout", "10")
    assert code == 1, f"exit {code}\n{out}\n{err}\n{host.log()}"
    [turn] = json.loads(out)["turns"]
    assert turn["latency_ms"] is None and "published no audio track: is it a voice agent?" in turn["error"], turn
