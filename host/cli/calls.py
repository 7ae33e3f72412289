"""`agenthost dispatch`, `agenthost call` and `agenthost console`: a job for an agent, through the server."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import NoReturn

import click

from host.cli.common import (
    EXIT_SERVER,
    EXIT_USAGE,
    Duration,
    agent_and_metadata,
    credentials_from,
    http_base,
    read_token,
    running_host_options,
    server_options,
)
from host.cli.group import cli
from host.config.credentials import Credentials
from host.errors import AgentHostError, ServerError
from host.logs import rtc_logs_to_python


def client_credentials(url: str | None, api_key: str | None, api_secret: str | None) -> Credentials:
    """The server's credentials for a command that reports to the terminal. PyJWT would warn of a short API
    secret (the dev server's) in the middle of the report; the server says so where the secret is set
    (livekit-server logs "secret is too short"), and a host (`agenthost run`) keeps the warning."""
    warnings.filterwarnings("ignore", message="The HMAC key is .* below the minimum recommended length")
    # likewise the rtc library's own records (each retry of a connection, its failure) would bury the one line
    # that says what failed; LIVEKIT_RTC_DEBUG, as the rtc client reads it, still shows them
    if not rtc_logs_to_python(os.environ):
        logging.getLogger("livekit").setLevel(logging.CRITICAL)
    return credentials_from(url, api_key, api_secret)


@cli.command()
@click.argument("agent")
@click.option("--room", required=True, help="Room to dispatch the agent to (created if needed).")
@click.option("--metadata", "payload", default="", help="Job metadata: JSON text or @file.")
@click.option("--config", "paths", multiple=True, type=click.Path(exists=True),
              help="Agent files or folders (default ./agents.d).")
@server_options
def dispatch(agent: str, room: str, payload: str, paths: tuple[str, ...], url: str | None,
             api_key: str | None, api_secret: str | None) -> None:
    """Validate the metadata against AGENT's schema, then create a dispatch and print its id."""
    import asyncio

    from host.runtime.dispatching import create_dispatch

    definition, text = agent_and_metadata(agent, payload, paths)
    credentials = client_credentials(url, api_key, api_secret)
    try:
        dispatch_id = asyncio.run(create_dispatch(credentials, definition.registered_name, room, text))
    except ServerError as exc:
        click.echo(f"agenthost: {exc}", err=True)
        sys.exit(EXIT_SERVER)
    click.echo(dispatch_id)


class _TurnsInOrder(click.Command):
    """Keeps the order in which --say and --wav were given: a call speaks its turns in that order."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        _, _, order = self.make_parser(ctx).parse_args(args=list(args))
        ctx.meta["turns"] = [param.name for param in order if param.name in ("say", "wav")]
        return super().parse_args(ctx, args)


@cli.command(cls=_TurnsInOrder)
@click.argument("agent")
@click.option("--say", multiple=True, metavar="TEXT", help="A turn to speak, synthesised locally (repeatable).")
@click.option("--wav", multiple=True, metavar="FILE", help="A turn to play from a WAV file (repeatable).")
@click.option("--metadata", "payload", default="", help="Job metadata: JSON text or @file.")
@click.option("--room", default=None, help="Room to call in (default: a new room, deleted after the call).")
@click.option("--record", type=click.Path(file_okay=False), default=None,
              help="Save each answer of the agent as DIR/turn-NN.wav.")
@click.option("--timeout", type=Duration(0.1), default=20.0, show_default=True,
              help="Seconds for the agent to join, and for each answer to start.")
@click.option("--json", "as_json", is_flag=True, help='Print {"turns": [...]} instead of lines.')
@click.option("--config", "paths", multiple=True, type=click.Path(exists=True),
              help="Agent files or folders (default ./agents.d).")
@server_options
def call(agent: str, say: tuple[str, ...], wav: tuple[str, ...], payload: str, room: str | None,
         record: str | None, timeout: float, as_json: bool, paths: tuple[str, ...], url: str | None,
         api_key: str | None, api_secret: str | None) -> None:
    """Call AGENT by voice through the server: speak each turn, print what it understood and answered.

    Exit 0 when every turn was answered, 1 when one was not (or the agent never joined), 2 for bad input (an
    unknown agent, metadata its schema refuses, a WAV that cannot be used), 3 when the server is unreachable."""
    from host.voice import command
    from host.voice.audio import record_folder

    definition, text = agent_and_metadata(agent, payload, paths, invalid=EXIT_USAGE, payload_hint="--metadata")
    if not say and not wav:
        raise click.UsageError("nothing to say: give --say TEXT or --wav FILE (repeatable)")
    if room is not None and not room.strip():
        raise click.BadParameter("a room's name cannot be empty", param_hint="--room")
    credentials = client_credentials(url, api_key, api_secret)
    try:
        record_dir = record_folder(record) if record else None
    except AgentHostError as exc:
        raise click.BadParameter(str(exc), param_hint="--record") from exc
    # from here the rtc library may run threads of its own (a WAV's rate converted, the call): every way out
    # leaves without unloading the library under them, which can abort the process and lose the exit code
    ctx = click.get_current_context()
    try:
        turns = command.turns(ctx.meta["turns"], list(say), list(wav))
    except AgentHostError as exc:
        _leave(click.BadParameter(str(exc), ctx, param_hint="--say/--wav"))
    _leave(command.run_call(credentials, definition.registered_name, text, turns, room=room,
                            record=record_dir, timeout=timeout, as_json=as_json))


def _leave(outcome: int | click.ClickException) -> NoReturn:
    """Exit with `outcome` (a code, or a usage error shown as click shows it) at once, output flushed."""
    if isinstance(outcome, click.ClickException):
        outcome.show()
    code = outcome.exit_code if isinstance(outcome, click.ClickException) else outcome
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@cli.command()
@click.argument("agent")
@click.option("--metadata", "payload", default="", help="Job metadata: JSON text or @file.")
@click.option("--room", default=None, help="Room to talk in (default: a new room, deleted at the end).")
@click.option("--audio", is_flag=True,
              help="Speak each line with the local synthesiser (a voice turn) and save the agent's answers.")
@click.option("--record", type=click.Path(file_okay=False), default="console-audio", show_default=True,
              help="With --audio: where the agent's answers are saved (turn-NN.wav).")
@click.option("--timeout", type=Duration(0.1), default=20.0, show_default=True,
              help="How long the agent may take to join (and, with --audio, each answer to start).")
@click.option("--config", "paths", multiple=True, type=click.Path(exists=True),
              help="Agent files or folders (default ./agents.d).")
@click.option("--logs", is_flag=True,
              help="Show the job's log lines inline, as the host serving it logs them (its /logs at --http: "
                   "`agenthost dev`'s host by default).")
@running_host_options
@server_options
def console(agent: str, payload: str, room: str | None, audio: bool, record: str, timeout: float,
            paths: tuple[str, ...], logs: bool, http: str, http_token: str | None, http_token_file: str | None,
            url: str | None, api_key: str | None, api_secret: str | None) -> None:
    """Talk to AGENT from the terminal: a new room, the agent dispatched there by the server, and what you type
    sent as chat (or spoken, with --audio); what it says is printed as it streams. /quit or Ctrl-D ends.

    Exit 0 when you end the call, 1 when the agent never joined or left, 2 for bad input (an unknown agent,
    metadata its schema refuses), 3 when the server is unreachable."""
    from pathlib import Path

    from host.voice.audio import record_folder
    from host.voice.console import ConsoleOptions, run_console
    from host.voice.hostlogs import JobLogSource

    definition, text = agent_and_metadata(agent, payload, paths, invalid=EXIT_USAGE, payload_hint="--metadata")
    credentials = client_credentials(url, api_key, api_secret)
    if audio:
        try:
            record_folder(record)
        except AgentHostError as exc:
            raise click.BadParameter(str(exc), param_hint="--record") from exc
    source = None
    if logs:
        source = JobLogSource(http_base(http, "--http"), read_token(http_token, http_token_file))
    code = run_console(credentials, definition.registered_name, text,
                       ConsoleOptions(room=room, audio=audio, record=Path(record), timeout=timeout, logs=source))
    _leave(code)  # as `call`: without unloading the rtc library under its own threads
