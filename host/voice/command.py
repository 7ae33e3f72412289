"""What `agenthost call` does below the CLI: its turns from the options, the call, and its report."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from pathlib import Path

import click

from host.config.credentials import Credentials
from host.errors import AgentHostError, ServerError
from host.runtime.dispatching import delete_room
from host.voice.audio import read_wav
from host.voice.caller import Caller
from host.voice.speech import SpeechUnavailable, Synthesizer
from host.voice.turns import SPEECH_FLOOR_RMS, CallOptions, Turn, TurnResult, trailing_silence

EXIT_OK, EXIT_UNANSWERED, EXIT_SERVER = 0, 1, 3  # bad input (2) is refused before: host.cli.calls


def turns(order: Sequence[str], say: list[str], wav: list[str]) -> list[Turn]:
    """The turns in the order their options were given (`order` names "say" or "wav" once per option)."""
    synthesizer = Synthesizer() if say else None
    texts, files = iter(say), iter(wav)
    result = []
    for kind in order:
        if kind == "say":
            text = next(texts)
            assert synthesizer is not None
            result.append(Turn(text, synthesizer.synthesize(text)))
            if not result[-1].pcm:
                raise AgentHostError(f"the synthesiser made no audio of {text!r} (it speaks English words): "
                                     "nothing would be said")
        else:
            path = next(files)
            result.append(Turn(Path(path).name, read_wav(path)))
            if not result[-1].pcm:
                raise AgentHostError(f"{path} has no audio: nothing would be said")
            if trailing_silence(result[-1].pcm) is None:
                raise AgentHostError(f"{path} holds only silence (no 20 ms of it louder than "
                                     f"{SPEECH_FLOOR_RMS:g} RMS): nothing would be said")
    return result


def render_turn(index: int, turn: TurnResult) -> str:
    lines = [f"turn {index}: said      {turn.said!r}",
             f"        understood {turn.understood!r}" if turn.understood is not None else None,
             f"        answered   {turn.answered!r}" if turn.answered is not None else None,
             f"        heard      {turn.heard!r}" if turn.heard is not None else None,
             f"        latency    {latency(turn.latency_ms)}"
             if turn.latency_ms is not None else f"        NO ANSWER: {turn.error}"]
    return "\n".join(line for line in lines if line is not None)


def latency(ms: float) -> str:
    if ms < 0:
        return f"{-ms:.0f} ms before the end of speech (the agent spoke while the caller did)"
    return f"{ms:.0f} ms (end of speech -> first agent audio)"


def run_call(credentials: Credentials, agent_name: str, metadata: str, call_turns: list[Turn], *,
             room: str | None, record: Path | None, timeout: float, as_json: bool) -> int:
    """Make the call and print its report (the agent's answers saved in `record`, a `record_folder`); the exit
    code."""
    room_name = room or f"call-{uuid.uuid4().hex[:8]}"

    done: list[TurnResult] = []  # the turns over so far, for a report of a call that ends early

    def show(index: int, turn: TurnResult) -> None:
        done.append(turn)
        if not as_json:
            click.echo(render_turn(index, turn))

    async def main() -> list[TurnResult]:
        try:
            caller = Caller(credentials, CallOptions(timeout=timeout, record=record))
        except SpeechUnavailable as exc:  # the caller's ear is optional: the turns are measured without it
            click.echo(f"agenthost: {exc}; the answers are measured but not recognised ('heard' is left out)",
                       err=True)
            caller = Caller(credentials, CallOptions(timeout=timeout, record=record, recognize=False))
        try:
            return await caller.call(agent_name, room_name, metadata, call_turns, on_turn=show)
        finally:
            if room is None and caller.joined:  # a room it made (none when it could not join)
                await delete_room(credentials, room_name)

    def failed(exc: AgentHostError, code: int) -> int:
        click.echo(f"agenthost: {exc}", err=True)
        if as_json:  # the call ended before its turns: the report says why, and which turns were not spoken
            unspoken = [TurnResult(said=turn.said, error=f"not spoken: {exc}") for turn in call_turns[len(done):]]
            click.echo(json.dumps({"agent": agent_name, "room": room_name,
                                   "turns": [turn.as_dict() for turn in [*done, *unspoken]], "error": str(exc)},
                                  indent=2))
        return code

    try:
        results = asyncio.run(main())
    except ServerError as exc:
        return failed(exc, EXIT_SERVER)
    except AgentHostError as exc:
        return failed(exc, EXIT_UNANSWERED)
    unanswered = [i for i, turn in enumerate(results, 1) if turn.latency_ms is None]
    if as_json:
        click.echo(json.dumps({"agent": agent_name, "room": room_name,
                               "turns": [turn.as_dict() for turn in results], "error": None}, indent=2))
    if unanswered:
        click.echo(f"agenthost: turn{'s' if len(unanswered) > 1 else ''} "
                   f"{', '.join(map(str, unanswered))} got no answer", err=True)
        return EXIT_UNANSWERED
    return EXIT_OK
