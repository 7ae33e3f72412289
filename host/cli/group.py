"""The `agenthost` command group, and its entry point; each command module registers itself on `cli`."""

from __future__ import annotations

import sys

import click

from host import __version__
from host.cli.common import EXIT_INVALID
from host.errors import AgentHostError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="agenthost")
def cli() -> None:
    """A host for LiveKit agents configured by drop-in YAML files."""


def main() -> None:
    try:
        cli.main(prog_name="agenthost", standalone_mode=True)
    except AgentHostError as exc:  # pragma: no cover - commands handle their own errors
        click.echo(f"agenthost: {exc}", err=True)
        sys.exit(EXIT_INVALID)
