"""The `agenthost` command as users run it, for tests: a child process, its output captured, bounded in time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def agenthost(*args: str, cwd: Path | str = ROOT, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "host", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, check=False)
