"""`agenthost status` and `agenthost top`: a running host, seen from outside."""

from __future__ import annotations

import sys

import click

from host.cli.common import EXIT_SERVER, Duration, http_base, read_token, running_host_options
from host.cli.group import cli


@cli.command()
@running_host_options
@click.option("--json", "as_json", is_flag=True, help="Print the /status document as it is.")
def status(http: str, http_token: str | None, http_token_file: str | None, as_json: bool) -> None:
    """Show a running host's agents and jobs (its /status) as tables."""
    import json

    from host.ops.status import render_status
    from host.ops.status_fetch import StatusError, fetch_status

    address = http_base(http, "--http") + "/status"
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
@running_host_options
@click.option("--interval", type=Duration(0.2), default=1.0, show_default=True,
              help="Seconds between two reads of the host's /status.")
def top(http: str, http_token: str | None, http_token_file: str | None, interval: float) -> None:
    """A running host's jobs (CPU, memory, age) and agents, live. Keys: c/m/a sort by CPU, memory or age,
    f shows one agent at a time, q quits."""
    from host.ops.status_fetch import StatusError, fetch_status
    from host.ops.top import run_top

    address = http_base(http, "--http") + "/status"
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
