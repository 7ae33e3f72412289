"""The `agenthost` command as users run it, for tests: a child process, its output captured, bounded in time."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def agenthost(*args: str, cwd: Path | str = ROOT, timeout: float = 60,
              env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `agenthost ARGS` (with `env` over this process's environment); nothing on its standard input."""
    return subprocess.run([sys.executable, "-m", "host", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **env} if env is not None else None, stdin=subprocess.DEVNULL,
                          timeout=timeout, check=False)
