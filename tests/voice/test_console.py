"""The console's parts that need no server: Ctrl-C twice."""

from __future__ import annotations

import io

from host.voice.console import Console, ConsoleOptions


def test_a_second_ctrl_c_quits_and_the_first_says_how():
    out = io.StringIO()
    console = Console(None, "agent", "", ConsoleOptions(), out=out)  # type: ignore[arg-type]
    assert console.interrupt() is False
    assert out.getvalue() == "  (Ctrl-C again to quit, or /quit)\n"
    assert console.interrupt() is True
