"""The environment a job process runs with."""

from __future__ import annotations

import os

from host.config.definitions import AgentDefinition

BASIC_ENV = frozenset({"PATH", "HOME", "LANG", "TZ", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV"})


def apply_environment(definition: AgentDefinition) -> None:
    """The job's environment: the host's (all of it, or the names `inherit_env` lists, with the basics),
    then the agent's own `env`. The LiveKit API secret is never there: the host removed it from its own
    environment before the fork server started (a livekit-agents job gets it back, as livekit-agents'
    server gives it)."""
    if definition.inherit_env is not None:
        keep = set(definition.inherit_env)
        for key in list(os.environ):
            if key not in keep and key not in BASIC_ENV and not key.startswith("LC_"):
                del os.environ[key]
    for key, value in definition.env:
        os.environ[key] = value
