"""The package installs into a clean virtualenv with only its declared dependencies, and works there.

Offline: the dependencies come from the wheelhouse `scripts/setup.sh` builds of the declared ones (tests
reach no package index). Which package imports what is checked precisely by tests/test_packaging.py; this
checks the wheel as a user gets it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WHEELHOUSE = Path(os.environ.get("AGENTHOST_WHEELHOUSE", Path.home() / ".cache" / "agenthost" / "wheels"))


def test_the_wheel_installs_from_its_declared_dependencies_and_every_core_module_imports(tmp_path: Path):
    if not any(WHEELHOUSE.glob("hatchling-*.whl")):
        pytest.fail(f"no wheelhouse at {WHEELHOUSE}: run scripts/setup.sh", pytrace=False)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-index", "--find-links", str(WHEELHOUSE),
                    str(ROOT)], check=True, cwd=tmp_path)
    # every module but those of the extras (livekit-agents, the voice tools, the test harness)
    modules = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                     for p in (ROOT / "host").rglob("*.py")
                     if p.relative_to(ROOT / "host").parts[0] not in ("lkagents", "voice", "testing", "__main__.py"))
    script = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\nprint(len(sys.argv) - 1)"
    done = subprocess.run([str(python), "-c", script, *modules], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == len(modules) > 50
    # not the livekit-agents extra: it is not installed
    missing = subprocess.run([str(python), "-c", "import livekit.agents"], capture_output=True, cwd=tmp_path)
    assert missing.returncode != 0
    (tmp_path / "agents.d").mkdir()
    (tmp_path / "agents.d" / "a.yaml").write_text("name: a\nentrypoint: a:entrypoint\n")
    (tmp_path / "a.py").write_text("async def entrypoint(ctx):\n    pass\n")
    checked = subprocess.run([str(venv / "bin" / "agenthost"), "validate"], capture_output=True, text=True,
                             cwd=tmp_path)
    assert (checked.returncode, checked.stdout) == (0, "ok: 1 agent in 1 file\n"), checked.stderr
