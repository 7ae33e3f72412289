"""What the console prints of the room: states and attributes, and lines that wait for a streamed answer."""

from __future__ import annotations

import io

from host.voice.printer import Printer


def test_agent_state_and_attributes_are_printed_and_mine_are_not():
    out = io.StringIO()
    printer = Printer(out, "me")

    class Someone:
        def __init__(self, identity: str) -> None:
            self.identity = identity

    printer.on_attributes({"lk.agent.state": "thinking"}, Someone("agent-1"))  # type: ignore[arg-type]
    printer.on_attributes({"mood": "fine"}, Someone("agent-1"))  # type: ignore[arg-type]
    printer.on_attributes({"lk.agent.state": "x"}, Someone("me"))  # type: ignore[arg-type]
    assert out.getvalue() == "  (thinking)\n  agent-1 mood = fine\n"


async def test_a_state_change_during_a_streamed_answer_waits_for_its_line():
    out = io.StringIO()
    printer = Printer(out, "me")

    class Reader:
        info = type("Info", (), {"attributes": {}})()

        def __init__(self) -> None:
            self.chunks = ["echo: ", "hello"]

        def __aiter__(self):
            return self

        async def __anext__(self) -> str:
            if not self.chunks:
                raise StopAsyncIteration
            chunk = self.chunks.pop(0)
            printer.line("  (speaking)")  # arrives while the answer streams
            return chunk

    await printer._stream("lk.transcription", "agent-1", Reader())  # type: ignore[arg-type]
    assert out.getvalue() == "agent > echo: hello\n  (speaking)\n  (speaking)\n"


def test_a_voice_turn_says_when_it_was_answered():
    from host.voice.turns import TurnResult

    out = io.StringIO()
    printer = Printer(out, "me")
    from pathlib import Path

    printer.on_turn(1, TurnResult(said="hi", latency_ms=812.4), Path("console-audio/turn-01.wav"))
    printer.on_turn(2, TurnResult(said="hi", latency_ms=-300.0), Path("console-audio/turn-02.wav"))
    printer.on_turn(3, TurnResult(said="hi", error="no answer within 20 s of the end of speech"))
    printer.on_turn(4, TurnResult(said="hi", latency_ms=500.0))  # saving it failed (a full disk, say)
    assert out.getvalue() == ("  (answered in 812 ms; saved as turn-01.wav)\n"
                              "  (answered 300 ms before the end of speech; saved as turn-02.wav)\n"
                              "  (no answer: no answer within 20 s of the end of speech)\n"
                              "  (answered in 500 ms; not saved)\n")
