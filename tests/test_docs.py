"""The documentation: its reference pages are what the sources say, the site builds with no broken link, and
the README stays a landing page whose links lead somewhere."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location("docs_reference", ROOT / "scripts" / "docs_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_reference_pages_are_what_the_sources_generate():
    for path, text in _generator().generate().items():
        committed = (ROOT / path).read_text()
        assert committed == text, f"{path} is stale: run python scripts/docs_reference.py"


def test_the_reference_names_every_key_and_every_option():
    from host.cli import cli

    reference = (ROOT / "docs" / "reference" / "cli.md").read_text()
    for name, command in cli.commands.items():
        assert f"## `agenthost {name}`" in reference
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--"):
                    assert f"`{opt}`" in reference, (name, opt)
    agent_file = (ROOT / "docs" / "reference" / "agent-file.md").read_text()
    for key in ("`name`", "`limits.memory_limit_mb`", "`recovery.on_host_loss`", "`shutdown.delete_room`"):
        assert key in agent_file


def test_the_site_builds_with_no_warning(tmp_path):
    if importlib.util.find_spec("mkdocs") is None:
        pytest.fail("mkdocs is not installed: pip install -e '.[docs]' (scripts/setup.sh does)", pytrace=False)
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "quick-start" / "index.html").exists()


def test_the_readme_is_a_landing_page_whose_links_exist():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    links = re.findall(r"\]\(((?!https?:)[^)#]+)", text)
    assert len(links) >= 10
    for link in links:
        assert (ROOT / link).exists(), link
