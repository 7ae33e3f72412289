"""End to end by voice: `agenthost call` speaks to the local voice agent (examples/voice_local.py: silero VAD,
pocketsphinx, flite, a rule LLM) served by `agenthost run`, through the real server, with no network."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest

from examples.rule_answers import answer
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


async def test_call_voice_local_every_turn_understood_and_answered(livekit_server, start_host, tmp_path):
    import os

    host = start_host(livekit_server, VOICE_LOCAL)
    await host.wait_log(r"registered agent voice-local")
    says = [arg for text in SAID for arg in ("--say", text)]
    code, out, err = await agenthost("call", "voice-local", *says, "--json", "--record", str(tmp_path / "rec"),
                                     "--config", str(VOICE_LOCAL), env={**os.environ, **livekit_server.env()})
    assert code == 0, f"exit {code}\n{out}\n{err}\n{host.log()}"
    turns = json.loads(out)["turns"]
    assert [t["said"] for t in turns] == SAID
    for turn in turns:
        assert turn["latency_ms"] is not None and turn["latency_ms"] > 0, turn
        # the agent understood the caller, answered by its rules, and the caller understood the answer
        assert understood(turn["said"], turn["understood"] or ""), turn
        assert turn["answered"] == answer(turn["understood"]), turn
        assert understood(turn["answered"], turn["heard"] or ""), turn
    assert sorted(p.name for p in (tmp_path / "rec").iterdir()) == [f"turn-0{i}.wav" for i in range(1, 5)]
    await host.wait_log(r"job ended .*agent=voice-local")
    assert "job failed" not in host.log() and "Traceback" not in host.log()


async def test_call_an_agent_that_answers_while_the_caller_speaks(livekit_server, start_host):
    """An agent that is not a livekit-agents session (examples/echo.py plays back what it hears as it hears
    it): its answer starts before the end of the caller's speech, and counts as an answer."""
    import os

    echo = ROOT / "agents.d" / "echo.yaml"
    host = start_host(livekit_server, echo)
    await host.wait_log(r"registered agent echo")
    code, out, err = await agenthost("call", "echo", "--say", "hello there", "--say", "what is your name",
                                     "--json", "--config", str(echo), env={**os.environ, **livekit_server.env()})
    assert code == 0, f"exit {code}\n{out}\n{err}\n{host.log()}"
    assert "HMAC key" not in err  # the dev server's short secret is the server's to warn of, not each token's
    turns = json.loads(out)["turns"]
    assert [t["said"] for t in turns] == ["hello there", "what is your name"]
    for turn in turns:
        assert turn["latency_ms"] is not None and turn["latency_ms"] < 0, turn  # it spoke while the caller did
        assert turn["understood"] is None and turn["answered"] is None, turn  # it publishes no transcripts
        assert understood(turn["said"], turn["heard"] or ""), turn  # what it played back was the caller's turn
