"""The `agenthost` command line: the only place that turns errors into messages and exit codes.

One module per kind of command: checks (validate, schema), serve (run), inspect (status, top), calls
(dispatch, call, console), project (init), dev (the development loop); what they share is in common, and the
group they register on is in group.
"""

from __future__ import annotations

from host.cli import calls, checks, dev, inspect, project, serve
from host.cli.group import cli, main

__all__ = ["calls", "checks", "cli", "dev", "inspect", "main", "project", "serve"]
