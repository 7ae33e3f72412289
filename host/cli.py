"""The `agenthost` command line. The only place that turns errors into messages and exit codes.

Exit codes: 0 success; 1 invalid input (configuration, metadata) or a failed run;
2 usage errors (unknown option, missing path, unknown agent); 3 server (or, for
`status`, the host) unreachable.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from host import __version__
from host.config.credentials import Credentials
from host.config.loader import DEFAULT_PATH, Catalog, load
from host.config.report import FORMATS, render
from host.errors import AgentHostError, ConfigError, ListenError, Problem, ServerError, UnknownAgentError

if TYPE_CHECKING:
    from host.config.definitions import AgentDefinition

EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_SERVER = 3

_paths = click.argument("paths", nargs=-1, type=click.Path(exists=True, dir_okay=True, file_okay=True))


def _default_paths(paths: Sequence[str]) -> list[str]:
    if paths:
        return list(paths)
    if not os.path.exists(DEFAULT_PATH):
        raise click.UsageError(f"no PATH given and ./{DEFAULT_PATH} does not exist")
    return [DEFAULT_PATH]


def read_payload(payload: str) -> tuple[str, str]:
    """(text, source name) of a metadata argument: JSON text, or @file (read up to the metadata bound)."""
    from host.config.untrusted import MAX_METADATA_BYTES

    if payload.startswith("@"):
        path = payload[1:]
        try:
            with open(path, "rb") as fh:
                data = fh.read(MAX_METADATA_BYTES + 1)
            if len(data) > MAX_METADATA_BYTES:
                raise click.BadParameter(f"{path!r} is over the metadata limit of {MAX_METADATA_BYTES} bytes",
                                         param_hint="PAYLOAD")
            return data.decode("utf-8"), path
        except (OSError, UnicodeDecodeError) as exc:
            raise click.BadParameter(f"cannot read {path!r}: {exc}", param_hint="PAYLOAD") from exc
    return payload, "<metadata>"


def read_token(token: str | None, token_file: str | None) -> str | None:
    """The bearer token: from --http-token-file (its first line), or --http-token; not both."""
    if token_file is None:
        return token or None
    if token:
        raise click.UsageError("give --http-token or --http-token-file (or their variables), not both")
    try:
        with open(token_file, encoding="utf-8") as fh:
            first = fh.readline(4096).strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"cannot read {token_file!r}: {exc}", param_hint="--http-token-file") from exc
    if not first:
        raise click.BadParameter(f"{token_file!r} holds no token", param_hint="--http-token-file")
    return first


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="agenthost")
def cli() -> None:
    """A host for LiveKit agents configured by drop-in YAML files."""


@cli.command()
@_paths
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("--no-imports", is_flag=True, help="Do not import entrypoint and setup modules.")
@click.option("--import-timeout", type=float, default=10.0, show_default=True,
              help="Seconds each import check may take.")
@click.option("--metadata", "metadata", nargs=2, metavar="AGENT PAYLOAD",
              help="Validate a metadata payload (JSON text or @file) against AGENT's schema.")
def validate(paths: tuple[str, ...], fmt: str, no_imports: bool, import_timeout: float,
             metadata: tuple[str, str] | None) -> None:
    """Check agent files (default ./agents.d) and, with --metadata, a job metadata payload."""
    catalog = load(_default_paths(paths), check_imports=not no_imports, import_timeout=import_timeout)
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
    click.echo(render(fmt, catalog.agents, problems, len(catalog.files), catalog.warnings), nl=False)
    sys.exit(EXIT_INVALID if problems else 0)


@cli.command()
def schema() -> None:
    """Print the JSON Schema of agent files."""
    from host.config.schema import schema_text

    click.echo(schema_text(), nl=False)


def load_or_exit(paths: Sequence[str], fmt: str = "text") -> Catalog:
    """Load for commands that need a valid configuration; print the problems and exit 1 otherwise."""
    try:
        return load(_default_paths(paths)).require_ok()
    except ConfigError as exc:
        click.echo(render(fmt, (), exc.problems), err=True, nl=False)
        sys.exit(EXIT_INVALID)


DEV_URL, DEV_KEY, DEV_SECRET = "ws://127.0.0.1:7880", "devkey", "secret"
DEFAULT_HTTP = "127.0.0.1:8081"

_server_options = [
    click.option("--url", envvar="LIVEKIT_URL", help="LiveKit server URL [env LIVEKIT_URL]."),
    click.option("--api-key", envvar="LIVEKIT_API_KEY", help="[env LIVEKIT_API_KEY]"),
    click.option("--api-secret", envvar="LIVEKIT_API_SECRET", help="[env LIVEKIT_API_SECRET]"),
]


_running_host_options = [
    click.option("--http", "http", default=DEFAULT_HTTP, show_default=True, envvar="AGENTHOST_HTTP",
                 help="The running host's HTTP address [env AGENTHOST_HTTP]."),
    click.option("--http-token", envvar="AGENTHOST_HTTP_TOKEN", default=None,
                 help="The host's bearer token, if it requires one [env AGENTHOST_HTTP_TOKEN]."),
    click.option("--http-token-file", envvar="AGENTHOST_HTTP_TOKEN_FILE", default=None,
                 help="A file whose first line is that token [env AGENTHOST_HTTP_TOKEN_FILE]."),
]


def _running_host(fn: Any) -> Any:
    """The options of a command that reads a running host's /status (status, top)."""
    for option in reversed(_running_host_options):
        fn = option(fn)
    return fn


def _server(fn: Any) -> Any:
    for option in reversed(_server_options):
        fn = option(fn)
    return fn


def _credentials(url: str | None, api_key: str | None, api_secret: str | None) -> Credentials:
    if not (url or api_key or api_secret):
        click.echo(f"agenthost: no LIVEKIT_URL/LIVEKIT_API_KEY/LIVEKIT_API_SECRET; using the local dev "
                   f"server's defaults ({DEV_URL}, {DEV_KEY}/{DEV_SECRET})", err=True)
        return Credentials(DEV_URL, DEV_KEY, DEV_SECRET)
    missing = [n for n, v in (("LIVEKIT_URL", url), ("LIVEKIT_API_KEY", api_key),
                              ("LIVEKIT_API_SECRET", api_secret)) if not v]
    if missing:
        raise click.UsageError(f"missing {', '.join(missing)} (set it or pass the matching option)")
    assert url and api_key and api_secret
    return Credentials(url, api_key, api_secret)


@cli.command()
@_paths
@_server
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True)
@click.option("--drain-timeout", type=float, default=60.0, show_default=True,
              help="Seconds running jobs may take to finish after SIGTERM before they are shut down.")
@click.option("--reload", "watch", is_flag=True,
              help="Watch agent files and agent code and reload on change (SIGHUP reloads without it).")
@click.option("--import-timeout", type=float, default=10.0, show_default=True,
              help="Seconds a reload may spend importing each changed agent's code to check it.")
@click.option("--http", "http", default=DEFAULT_HTTP, show_default=True, envvar="AGENTHOST_HTTP",
              help="HOST:PORT for /healthz, /readyz, /status and /metrics ('off' for none) [env AGENTHOST_HTTP].")
@click.option("--http-token", envvar="AGENTHOST_HTTP_TOKEN", default=None,
              help="Bearer token that /status and /metrics require (/healthz and /readyz stay open) "
                   "[env AGENTHOST_HTTP_TOKEN].")
@click.option("--http-token-file", envvar="AGENTHOST_HTTP_TOKEN_FILE", default=None,
              help="A file whose first line is that token, so that it is on no command line "
                   "[env AGENTHOST_HTTP_TOKEN_FILE].")
@click.option("--load-threshold", type=click.FloatRange(0, 1), default=0.9, show_default=True,
              help="CPU use (0-1, smoothed) at which the host tells the server it is full; 0 = CPU not counted.")
@click.option("--server-target-load", type=click.FloatRange(0.05, 1), default=0.7, show_default=True,
              help="The LiveKit server's agents target_load: the server offers no job to a worker at or above "
                   "it, so an open host always reports less.")
@click.option("--job-limits", type=click.Choice(["auto", "cgroup", "rlimit"]), default="auto", show_default=True,
              envvar="AGENTHOST_JOB_LIMITS",
              help="How each job's limits are enforced: a cgroup per job (the kernel's memory, process and CPU "
                   "bounds), rlimits, or auto (a cgroup where the host may create one) [env AGENTHOST_JOB_LIMITS].")
@click.option("--state-dir", envvar="AGENTHOST_STATE_DIR", default=None,
              help="Where the journal of running jobs is kept, so that the next host to start gives the calls of "
                   "one that died their agent again [env AGENTHOST_STATE_DIR; default systemd's $STATE_DIRECTORY, "
                   "/var/lib/agenthost as root, else $XDG_STATE_HOME/agenthost].")
def run(paths: tuple[str, ...], url: str | None, api_key: str | None, api_secret: str | None,
        log_format: str, log_level: str, drain_timeout: float, watch: bool, import_timeout: float,
        http: str, http_token: str | None, http_token_file: str | None, load_threshold: float,
        server_target_load: float, job_limits: str, state_dir: str | None) -> None:
    """Serve every agent under PATHS (default ./agents.d) to a LiveKit server.

    A reload (SIGHUP, or a change seen with --reload) validates everything again and
    applies only a valid configuration; running jobs keep the definition and code they
    started with."""
    import asyncio
    import logging

    from host.secrets import restart_without_secrets, take_secrets

    passed = take_secrets()
    if passed is None:  # started by a person or a supervisor: hide what they gave from other processes
        restart_without_secrets({"api_secret": api_secret, "http_token": http_token})
    else:  # started again without them: here they are
        api_secret = passed.get("api_secret", api_secret)
        http_token = passed.get("http_token", http_token)
    from host import logs
    from host.errors import AgentHostError
    from host.ops.resources import LoadPolicy
    from host.runtime.host import Host, HostOptions
    from host.runtime.journal import default_state_dir

    address = None if http == "off" else _address(http, "--http")
    level = getattr(logging, log_level.upper())
    logs.setup(log_format, level)
    agent_paths = _default_paths(paths)
    credentials = _credentials(url, api_key, api_secret)
    token = read_token(http_token, http_token_file)
    # the host keeps its secrets: no process it starts (the import checks, the fork server, job processes)
    # inherits them in its environment
    for secret in ("LIVEKIT_API_SECRET", "AGENTHOST_HTTP_TOKEN", "AGENTHOST_HTTP_TOKEN_FILE"):
        os.environ.pop(secret, None)
    from host.process.sandbox import not_dumpable

    not_dumpable()  # no job process may read the host's memory (its secrets) or attach to it
    catalog = load_or_exit(agent_paths)
    try:
        host = Host(catalog, credentials, HostOptions(
            paths=tuple(agent_paths), log_format=log_format, log_level=level, drain_timeout=drain_timeout,
            watch=watch, import_timeout=import_timeout, http=address, http_token=token,
            load=LoadPolicy(load_threshold, server_target_load), job_limits=job_limits,
            state_dir=state_dir or default_state_dir()))
        asyncio.run(host.run())
    except (ListenError, AgentHostError) as exc:
        click.echo(f"agenthost: {exc}", err=True)
        sys.exit(EXIT_INVALID)


def _address(text: str, option: str) -> tuple[str, int]:
    from host.ops.httpserver import parse_address

    try:
        return parse_address(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from exc


@cli.command()
@_running_host
@click.option("--json", "as_json", is_flag=True, help="Print the /status document as it is.")
def status(http: str, http_token: str | None, http_token_file: str | None, as_json: bool) -> None:
    """Show a running host's agents and jobs (its /status) as tables."""
    import json

    from host.ops.status import StatusError, fetch_status, render_status

    host, port = _address(http, "--http")
    address = f"http://{host}:{port}/status"
    try:
        body = fetch_status(address, read_token(http_token, http_token_file))
        text = json.dumps(body, indent=2) if as_json else render_status(body)
    except StatusError as exc:
        click.echo(f"agenthost: cannot read {address}: {exc}", err=True)
        sys.exit(EXIT_SERVER)
    except (KeyError, TypeError, ValueError) as exc:
        click.echo(f"agenthost: cannot read {address}: not a status document ({type(exc).__name__}: "
                   f"{str(exc)[:200]!r})", err=True)
        sys.exit(EXIT_SERVER)
    click.echo(text, nl=as_json)


@cli.command()
@_running_host
@click.option("--interval", type=click.FloatRange(min=0.2), default=1.0, show_default=True,
              help="Seconds between two reads of the host's /status.")
def top(http: str, http_token: str | None, http_token_file: str | None, interval: float) -> None:
    """A running host's jobs (CPU, memory, age) and agents, live. Keys: c/m/a sort by CPU, memory or age,
    f shows one agent at a time, q quits."""
    from host.ops.status import StatusError, fetch_status
    from host.ops.top import run_top

    host, port = _address(http, "--http")
    address = f"http://{host}:{port}/status"
    token = read_token(http_token, http_token_file)
    try:
        run_top(address, lambda: fetch_status(address, token, deadline=min(5.0, 3 * interval)), interval)
    except StatusError as exc:
        click.echo(f"agenthost: cannot read {address}: {exc}", err=True)
        sys.exit(EXIT_SERVER)
    except (KeyError, TypeError, ValueError) as exc:
        click.echo(f"agenthost: cannot read {address}: not a status document ({type(exc).__name__})", err=True)
        sys.exit(EXIT_SERVER)
    except KeyboardInterrupt:
        pass


def _agent_and_metadata(agent: str, payload: str, paths: Sequence[str]) -> tuple[AgentDefinition, str]:
    """AGENT's definition and the metadata text, checked against its schema; exits with the problems."""
    from host.config.metadata import MetadataChecker

    catalog = load(_default_paths(paths), check_imports=False)
    agents = catalog.by_name()
    if agent not in agents:
        if catalog.problems:  # the agent may be defined by a file that does not load: say why, not only "no agent"
            click.echo(render("text", (), catalog.problems), err=True, nl=False)
            click.echo(f"agenthost: {UnknownAgentError(agent, agents)} that loads without problems", err=True)
            sys.exit(EXIT_INVALID)
        raise click.UsageError(str(UnknownAgentError(agent, agents)))
    text, source = read_payload(payload) if payload else ("", "<metadata>")
    problems = MetadataChecker(agents[agent].metadata).check(text, source)[1]
    if problems:
        click.echo(render("text", (), problems), err=True, nl=False)
        sys.exit(EXIT_INVALID)
    return agents[agent], text


@cli.command()
@click.argument("agent")
@click.option("--room", required=True, help="Room to dispatch the agent to (created if needed).")
@click.option("--metadata", "payload", default="", help="Job metadata: JSON text or @file.")
@click.option("--config", "paths", multiple=True, type=click.Path(exists=True),
              help="Agent files or folders (default ./agents.d).")
@_server
def dispatch(agent: str, room: str, payload: str, paths: tuple[str, ...], url: str | None,
             api_key: str | None, api_secret: str | None) -> None:
    """Validate the metadata against AGENT's schema, then create a dispatch and print its id."""
    import asyncio

    from host.runtime.dispatching import create_dispatch

    definition, text = _agent_and_metadata(agent, payload, paths)
    credentials = _credentials(url, api_key, api_secret)
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
@click.option("--timeout", type=click.FloatRange(min=0.1), default=20.0, show_default=True,
              help="Seconds for the agent to join, and for each answer to start.")
@click.option("--json", "as_json", is_flag=True, help='Print {"turns": [...]} instead of lines.')
@click.option("--config", "paths", multiple=True, type=click.Path(exists=True),
              help="Agent files or folders (default ./agents.d).")
@_server
def call(agent: str, say: tuple[str, ...], wav: tuple[str, ...], payload: str, room: str | None,
         record: str | None, timeout: float, as_json: bool, paths: tuple[str, ...], url: str | None,
         api_key: str | None, api_secret: str | None) -> None:
    """Call AGENT by voice through the server: speak each turn, print what it understood and answered.

    Exit 0 when every turn was answered, 1 when one was not (or the agent never joined)."""
    from host.voice import command

    definition, text = _agent_and_metadata(agent, payload, paths)
    if not say and not wav:
        raise click.UsageError("nothing to say: give --say TEXT or --wav FILE (repeatable)")
    try:
        turns = command.turns(click.get_current_context().meta["turns"], list(say), list(wav))
    except AgentHostError as exc:
        raise click.BadParameter(str(exc), param_hint="--say/--wav") from exc
    credentials = _credentials(url, api_key, api_secret)
    code = command.run_call(credentials, definition.registered_name, text, turns, room=room,
                            record=record, timeout=timeout, as_json=as_json)
    # everything is said: leave without unloading the rtc library under its own threads, which can abort the
    # process (a panic in the library, seen once after a failed connection) and lose the exit code
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
    try:
        cli.main(prog_name="agenthost", standalone_mode=True)
    except AgentHostError as exc:  # pragma: no cover - commands handle their own errors
        click.echo(f"agenthost: {exc}", err=True)
        sys.exit(EXIT_INVALID)
