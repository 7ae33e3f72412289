"""The environment a job process runs with: the host's (all, or what inherit_env names with the basics), then
the agent's own env."""

from __future__ import annotations

import os

from host.config.loader import load
from host.job.environment import apply_environment


def definition(tmp_path, extra: str):
    (tmp_path / "a.yaml").write_text(f"name: a\nentrypoint: m:f\n{extra}")
    return load([str(tmp_path)], check_imports=False).require_ok().agents[0]


def test_inherit_env_keeps_what_it_names_and_the_basics_then_env_is_set(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "environ", dict(os.environ))  # this process's own stays as it is
    monkeypatch.setenv("DATABASE_URL", "postgres://db")
    monkeypatch.setenv("OTHER_TEAMS_TOKEN", "t")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    monkeypatch.setenv("PATH", "/usr/bin")
    apply_environment(definition(tmp_path, "inherit_env: [DATABASE_URL]\nenv: {GREETING: hi}\n"))
    assert os.environ["DATABASE_URL"] == "postgres://db" and os.environ["GREETING"] == "hi"
    assert "OTHER_TEAMS_TOKEN" not in os.environ
    assert os.environ["LC_ALL"] == "C.UTF-8" and os.environ["PATH"] == "/usr/bin"


def test_by_default_everything_is_inherited_and_env_wins(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "environ", dict(os.environ))
    monkeypatch.setenv("OTHER", "kept")
    monkeypatch.setenv("GREETING", "from the host")
    apply_environment(definition(tmp_path, "env: {GREETING: hi}\n"))
    assert os.environ["OTHER"] == "kept" and os.environ["GREETING"] == "hi"
