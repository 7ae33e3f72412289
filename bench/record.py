"""Where the benchmarks keep their figures: `bench/results/NAME.json`, with the command that produced them and
the machine they ran on, for the charts of the performance page (scripts/charts.py)."""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "")
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs{f' ({model})' if model else ''}, Linux {platform.release()}, Python " \
           f"{platform.python_version()}"


def save(name: str, figures: dict[str, Any]) -> Path:
    """Write the figures of one run, with how they were produced; the file's path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    command = "python " + " ".join([os.path.relpath(sys.argv[0], Path.cwd()), *sys.argv[1:]])
    body = {"command": command, "machine": machine(),
            "date": datetime.date.today().isoformat(), **figures}
    path.write_text(json.dumps(body, indent=2) + "\n")
    return path
