"""`agenthost validate` and `agenthost schema`."""

from __future__ import annotations

import sys

import click

from host.cli.common import DURATION, EXIT_INVALID, default_paths, paths_argument, read_payload
from host.cli.group import cli
from host.config.loader import load
from host.config.report import FORMATS, render
from host.errors import Problem, UnknownAgentError


@cli.command()
@paths_argument
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("--no-imports", is_flag=True, help="Do not import entrypoint and setup modules.")
@click.option("--import-timeout", type=DURATION, default=10.0, show_default=True,
              help="Seconds each import check may take.")
@click.option("--metadata", "metadata", nargs=2, metavar="AGENT PAYLOAD",
              help="Validate a metadata payload (JSON text or @file) against AGENT's schema.")
@click.option("--no-env", is_flag=True,
              help="Read an unset ${VAR} as empty and note it, instead of an error (a CI without the secrets).")
@click.option("--strict", is_flag=True, help="Make every warning an error.")
def validate(paths: tuple[str, ...], fmt: str, no_imports: bool, import_timeout: float,
             metadata: tuple[str, str] | None, no_env: bool, strict: bool) -> None:
    """Check agent files (default ./agents.d) and, with --metadata, a job metadata payload."""
    catalog = load(default_paths(paths), check_imports=not no_imports, import_timeout=import_timeout,
                   strict=strict, unset_env_notes=no_env)
    problems: list[Problem] = list(catalog.problems)
    if metadata:
        agent_name, payload = metadata
        agents = catalog.by_name()
        if agent_name not in agents and not problems:
            raise click.UsageError(str(UnknownAgentError(agent_name, agents)))
        if agent_name in agents:
            from host.config.metadata import MetadataChecker

            text, source = read_payload(payload)
            problems.extend(MetadataChecker(agents[agent_name].metadata).check(text, source)[1])
    click.echo(render(fmt, catalog.agents, problems, len(catalog.files), catalog.warnings,
                      catalog.notes), nl=False)
    sys.exit(EXIT_INVALID if problems else 0)


@cli.command()
def schema() -> None:
    """Print the JSON Schema of agent files."""
    from host.config.schema import schema_text

    click.echo(schema_text(), nl=False)
