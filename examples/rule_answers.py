"""What the example voice agent's rule LLM (examples/local_speech.py) answers: a few phrases, and the rest
repeated."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable


def _now() -> str:
    now = datetime.datetime.now()
    return f"{now.hour % 12 or 12} {now.minute:02d}" if now.minute else f"{now.hour % 12 or 12} o'clock"


# what the rule LLM answers, by a pattern of the recognised words; anything else is echoed
RULES: list[tuple[re.Pattern[str], str | Callable[[], str]]] = [
    (re.compile(r"\b(hello|hi)\b"), "hello, this is the local voice agent"),
    (re.compile(r"\bhow are you\b"), "i am fine, thank you"),
    (re.compile(r"\byour name\b"), "my name is local agent"),
    (re.compile(r"\bwhat time\b"), lambda: f"it is {_now()}"),
    (re.compile(r"\b(goodbye|bye)\b"), "goodbye, have a nice day"),
]


def answer(said: str) -> str:
    text = said.lower().strip()
    if not text:
        return "sorry, i did not hear you"
    for pattern, reply in RULES:
        if pattern.search(text):
            return reply() if callable(reply) else str(reply)
    return f"you said {text}"


