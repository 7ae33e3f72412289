"""What the `agenthost` commands share: exit codes, options, reading payloads and tokens, loading the agents.

Exit codes: 0 success; 1 invalid input (configuration, metadata) or a failed run;
2 usage errors (unknown option, missing path, unknown agent); 3 server (or, for
`status`, the host) unreachable.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click

from host.config.credentials import Credentials, redact_url
from host.config.discovery import DEFAULT_PATH
from host.config.loader import Catalog, load
from host.config.report import render
from host.errors import ConfigError, UnknownAgentError

if TYPE_CHECKING:
    from host.config.definitions import AgentDefinition

EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_SERVER = 3

class Duration(click.ParamType):  # type: ignore[type-arg]
    """Seconds, as the agent files write them: a number, or a number with ms, s or m (`60s`, `1.5m`)."""

    name = "duration"

    def __init__(self, minimum: float = 0.0) -> None:
        self.minimum = minimum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        from host.config.definitions import parse_duration

        try:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                seconds = float(value)
            else:
                text = str(value).strip()
                seconds = float(text) if text.replace(".", "", 1).isdigit() else parse_duration(text)
        except ValueError:
            self.fail(f"{value!r} is not a duration (seconds, or a number with ms, s or m: 500ms, 60s, 1.5m)",
                      param, ctx)
        if seconds < self.minimum:
            self.fail(f"{value!r} is less than {self.minimum:g}s", param, ctx)
        return seconds


DURATION = Duration()

paths_argument = click.argument("paths", nargs=-1, type=click.Path(exists=True, dir_okay=True, file_okay=True))


def default_paths(paths: Sequence[str]) -> list[str]:
    if paths:
        return list(paths)
    if not os.path.exists(DEFAULT_PATH):
        raise click.UsageError(f"no PATH given and ./{DEFAULT_PATH} does not exist (write an agent file from a "
                               "livekit-agents module with `agenthost init agent.py`, or create "
                               f"./{DEFAULT_PATH}/NAME.yaml)")
    return [DEFAULT_PATH]


def read_payload(payload: str, hint: str = "PAYLOAD") -> tuple[str, str]:
    """(text, source name) of a metadata argument (named `hint` in errors): JSON text, or @file (read up to the
    metadata bound)."""
    from host.config.untrusted import MAX_METADATA_BYTES

    if payload.startswith("@"):
        path = payload[1:]
        try:
            with open(path, "rb") as fh:
                data = fh.read(MAX_METADATA_BYTES + 1)
            if len(data) > MAX_METADATA_BYTES:
                raise click.BadParameter(f"{path!r} is over the metadata limit of {MAX_METADATA_BYTES} bytes",
                                         param_hint=hint)
            return data.decode("utf-8"), path
        except (OSError, UnicodeDecodeError) as exc:
            raise click.BadParameter(f"cannot read {path!r}: {exc}", param_hint=hint) from exc
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


def load_or_exit(paths: Sequence[str], fmt: str = "text") -> Catalog:
    """Load for commands that need a valid configuration; print the problems and exit 1 otherwise."""
    try:
        return load(default_paths(paths)).require_ok()
    except ConfigError as exc:
        click.echo(render(fmt, (), exc.problems), err=True, nl=False)
        sys.exit(EXIT_INVALID)


DEV_URL, DEV_KEY, DEV_SECRET = "ws://127.0.0.1:7880", "devkey", "secret"
DEFAULT_HTTP = "127.0.0.1:8081"

SERVER_OPTIONS = [
    click.option("--url", envvar="LIVEKIT_URL", help="LiveKit server URL [env LIVEKIT_URL]."),
    click.option("--api-key", envvar="LIVEKIT_API_KEY", help="[env LIVEKIT_API_KEY]"),
    click.option("--api-secret", envvar="LIVEKIT_API_SECRET", help="[env LIVEKIT_API_SECRET]"),
]


RUNNING_HOST_OPTIONS = [
    click.option("--http", "http", default=DEFAULT_HTTP, show_default=True, envvar="AGENTHOST_HTTP",
                 help="The running host's HTTP address [env AGENTHOST_HTTP]."),
    click.option("--http-token", envvar="AGENTHOST_HTTP_TOKEN", default=None,
                 help="The host's bearer token, if it requires one [env AGENTHOST_HTTP_TOKEN]."),
    click.option("--http-token-file", envvar="AGENTHOST_HTTP_TOKEN_FILE", default=None,
                 help="A file whose first line is that token [env AGENTHOST_HTTP_TOKEN_FILE]."),
]


def running_host_options(fn: Any) -> Any:
    """The options of a command that reads a running host's /status (status, top)."""
    for option in reversed(RUNNING_HOST_OPTIONS):
        fn = option(fn)
    return fn


def server_options(fn: Any) -> Any:
    for option in reversed(SERVER_OPTIONS):
        fn = option(fn)
    return fn


def credentials_from(url: str | None, api_key: str | None, api_secret: str | None) -> Credentials:
    if not (url or api_key or api_secret):
        click.echo(f"agenthost: no LIVEKIT_URL/LIVEKIT_API_KEY/LIVEKIT_API_SECRET; using the local dev "
                   f"server's defaults ({DEV_URL}, {DEV_KEY}/{DEV_SECRET})", err=True)
        return Credentials(DEV_URL, DEV_KEY, DEV_SECRET)
    missing = [n for n, v in (("LIVEKIT_URL", url), ("LIVEKIT_API_KEY", api_key),
                              ("LIVEKIT_API_SECRET", api_secret)) if not v]
    if missing:
        raise click.UsageError(f"missing {', '.join(missing)} (set it or pass the matching option)")
    assert url and api_key and api_secret
    if not is_server_url(url):
        raise click.UsageError(f"LIVEKIT_URL {redact_url(url)!r} is not a server's URL: expected "
                               "ws://HOST:PORT or wss://HOST (http:// and https:// are taken too)")
    return Credentials(url, api_key, api_secret)


def is_server_url(url: str) -> bool:
    """Whether `url` can reach a LiveKit server: a ws, wss, http or https URL with a host (and a valid port)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not one
    except ValueError:
        return False
    return parts.scheme in ("ws", "wss", "http", "https") and bool(parts.hostname)


def http_address(text: str, option: str) -> tuple[str, int]:
    """HOST:PORT of an --http option, or a usage error naming it."""
    from host.ops.httpserver import parse_address

    try:
        return parse_address(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from exc


def http_base(text: str, option: str) -> str:
    """`http://HOST:PORT` of an --http option (an IPv6 host in brackets), or a usage error naming it."""
    host, port = http_address(text, option)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def agent_and_metadata(agent: str, payload: str, paths: Sequence[str], invalid: int = EXIT_INVALID,
                       payload_hint: str = "PAYLOAD") -> tuple[AgentDefinition, str]:
    """AGENT's definition and the metadata text (the option `payload_hint`), checked against its schema; exits
    with the problems (and the code `invalid`)."""
    from host.config.metadata import MetadataChecker

    catalog = load(default_paths(paths), check_imports=False)
    agents = catalog.by_name()
    if agent not in agents:
        if catalog.problems:  # the agent may be defined by a file that does not load: say why, not only "no agent"
            click.echo(render("text", (), catalog.problems), err=True, nl=False)
            click.echo(f"agenthost: {UnknownAgentError(agent, agents)} that loads without problems", err=True)
            sys.exit(invalid)
        raise click.UsageError(str(UnknownAgentError(agent, agents)))
    text, source = read_payload(payload, payload_hint) if payload else ("", "<metadata>")
    # a host gives a job to a version taking calls whose schema takes its metadata: one must (each one's
    # problems are said)
    versions = [d for d in catalog.agents if d.name == agent]
    taking = [d for d in versions if d.weight > 0] or versions  # a version at weight 0 takes no new call
    refused = [(d, MetadataChecker(d.metadata).check(text, source)[1]) for d in taking]
    if all(problems for _d, problems in refused):
        for definition, problems in refused:
            if len(versions) > 1:
                click.echo(f"agenthost: the metadata does not fit version {definition.version} of {agent}:", err=True)
            click.echo(render("text", (), problems), err=True, nl=False)
        sys.exit(invalid)
    return agents[agent], text
