"""`agenthost init`: an agent file from a livekit-agents module (or an `api: host` one)."""

from __future__ import annotations

import os
import sys

import click

from host.cli.common import DURATION, EXIT_INVALID, EXIT_USAGE
from host.cli.group import cli
from host.config.discovery import DEFAULT_PATH
from host.config.loader import load
from host.config.report import render


@cli.command()
@click.argument("target", metavar="MODULE_OR_FILE[:OBJECT]")
@click.option("--out", default=None, metavar="FILE",
              help=f"Where to write the agent file [default: {DEFAULT_PATH}/NAME.yaml].")
@click.option("--force", is_flag=True, help="Replace the file if it exists.")
@click.option("--import-timeout", type=DURATION, default=30.0, show_default=True,
              help="How long reading the module may take (seconds, or 30s, 1m).")
def init(target: str, out: str | None, force: bool, import_timeout: float) -> None:
    """Write the agent file that serves a livekit-agents module (an AgentServer, the function registered
    with @server.rtc_session, or WorkerOptions given to cli.run_app) as livekit-agents would, and check it.
    The module's app is never started."""
    from host.lkagents.init import InitError, NoModule, read, render_file
    from host.lkagents.project import NAME_RULE

    if out is not None and not out.endswith(os.sep) and not os.path.isdir(out) and not out.endswith((".yaml", ".yml")):
        raise click.BadParameter(f"{out}: a host reads agent files ending in .yaml or .yml only", param_hint="--out")
    try:
        reading = read(target, import_timeout)
    except InitError as exc:
        click.echo(f"agenthost init: {exc}", err=True)
        sys.exit(EXIT_USAGE if isinstance(exc, NoModule) else EXIT_INVALID)
    into = out if out is not None and (out.endswith(os.sep) or os.path.isdir(out)) else None  # a folder
    path = out if out is not None and into is None else \
        os.path.join(into or DEFAULT_PATH, f"{reading.default_name}.yaml")
    if os.path.exists(path) and not force:
        click.echo(f"agenthost init: {path} exists: not overwritten (--force replaces it)", err=True)
        sys.exit(EXIT_INVALID)
    written = render_file(reading, path, target)
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    # written beside its place under a name no host reads, checked there, then moved in at once: a host
    # reloading the folder never sees half a file, nor one that does not validate
    partial = os.path.join(folder, f".{os.path.basename(path)}.tmp")
    with open(partial, "w", encoding="utf-8") as fh:
        fh.write(written.text)
    catalog = load([partial])
    shown = render("text", catalog.agents, catalog.problems, len(catalog.files)).replace(
        os.path.relpath(partial) if not os.path.isabs(path) else partial, path)
    if catalog.problems:
        os.unlink(partial)
        click.echo(written.text, nl=False)
        click.echo(f"agenthost init: not written: the agent file above does not validate:\n{shown}", err=True,
                   nl=False)
        sys.exit(EXIT_INVALID)
    os.replace(partial, path)
    click.echo(f"wrote {path}: agent {reading.default_name!r}, api: {reading.api}"
               + (f", dispatch: {'explicit' if reading.server.agent_name else 'automatic'}"
                  if reading.server is not None else ""))
    registered = reading.server.agent_name if reading.server is not None else ""
    if registered and registered != reading.default_name:
        click.echo(f"  renamed: livekit-agents' agent_name {registered!r} is not a name an agent file can have "
                   f"({NAME_RULE}): dispatch {reading.default_name!r} instead")
    for line in written.not_carried:
        click.echo(f"  not carried over: {line}")
    click.echo(shown, nl=False)
