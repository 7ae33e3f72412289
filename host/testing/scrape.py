"""A running host's HTTP endpoints as tests read them: a page, and one sample of its /metrics."""

from __future__ import annotations

import re

import aiohttp


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text (the first whose labels include `labels`); fails when absent."""
    for line in text.splitlines():
        m = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if m and m.group(1) == name and all(f'{k}="{v}"' in (m.group(2) or "") for k, v in labels.items()):
            return float(m.group(3))
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    raise AssertionError(f"no sample {name}{{{want}}} in:\n{text}")
