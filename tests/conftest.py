from __future__ import annotations

import os
from pathlib import Path

import pytest

from host.testing import netns

ROOT = Path(__file__).resolve().parent.parent

# Done at import, while pytest is still single-threaded, so that every process
# this run starts (server, host, job processes, clients) lives in the namespace.
netns.enter()


@pytest.fixture
def chdir_root(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(ROOT)
    return ROOT


def pytest_report_header() -> str:
    where = "a private network namespace" if netns.ERROR is None else f"NO namespace ({netns.ERROR})"
    return f"agenthost: end-to-end tests run in {where}; pid {os.getpid()}"
