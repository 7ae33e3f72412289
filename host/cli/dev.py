"""`agenthost dev`: the development loop in one command.

It serves the agents with `run --reload` (human-readable logs, and each call's log lines kept for
`agenthost console --logs`). When no server is configured (no
LIVEKIT_URL, and nothing listening at the local default), it starts a livekit-server of its own in `--dev`
mode (found on PATH, or where scripts/install-livekit-server.sh puts it), says where, and stops it when the
host ends: it is the parent of both, and each dies with it.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import click

from host.cli.common import DEV_KEY, DEV_SECRET, DEV_URL, EXIT_SERVER, paths_argument
from host.cli.group import cli

PR_SET_PDEATHSIG = 1
SERVER_START = 20.0  # seconds the local server may take to listen


def _die_with_parent() -> None:  # runs in the child, between fork and exec
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def find_server() -> str | None:
    """A livekit-server binary: on PATH, or the newest the project's install script built."""
    found = shutil.which("livekit-server")
    if found:
        return found
    cache = os.environ.get("AGENTHOST_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "agenthost")
    built = sorted(glob.glob(os.path.join(cache, "livekit-server", "*", "server")))
    return built[-1] if built else None


def _listening(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


@cli.command()
@paths_argument
@click.option("--http", "http", default="127.0.0.1:8081", show_default=True,
              help="HOST:PORT for the host's /healthz, /status and /metrics.")
def dev(paths: tuple[str, ...], http: str) -> None:
    """Serve the agents under PATHS (default ./agents.d) with --reload and readable logs; start a local
    livekit-server (--dev) when none is configured, and stop it at the end."""
    env = dict(os.environ)
    server: subprocess.Popen[bytes] | None = None
    if not env.get("LIVEKIT_URL") and not _listening("127.0.0.1", 7880):
        binary = find_server()
        if binary is None:
            click.echo("agenthost dev: no LiveKit server configured (LIVEKIT_URL) or listening at "
                       f"{DEV_URL}, and no livekit-server binary found: build one with `bash "
                       "scripts/install-livekit-server.sh` (needs Go), put livekit-server on PATH, or set "
                       "LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET", err=True)
            sys.exit(EXIT_SERVER)
        log = tempfile.NamedTemporaryFile(prefix="agenthost-dev-livekit-", suffix=".log", delete=False)  # noqa: SIM115
        # in a session of its own, as the host: Ctrl-C reaches this process only, which stops them in order
        server = subprocess.Popen([binary, "--dev", "--bind", "127.0.0.1"], stdout=log, stderr=log,
                                  stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent, start_new_session=True)
        deadline = time.monotonic() + SERVER_START
        while not _listening("127.0.0.1", 7880):
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                click.echo(f"agenthost dev: the local livekit-server did not start (see {log.name})", err=True)
                sys.exit(EXIT_SERVER)
            time.sleep(0.1)
        click.echo(f"agenthost dev: local LiveKit server (dev mode, pid {server.pid}) at {DEV_URL}, key "
                   f"{DEV_KEY}, secret {DEV_SECRET}; its log: {log.name}; stopped when this ends", err=True)
    if not env.get("LIVEKIT_URL"):
        env.update(LIVEKIT_URL=DEV_URL, LIVEKIT_API_KEY=DEV_KEY, LIVEKIT_API_SECRET=DEV_SECRET)
    host = subprocess.Popen([sys.executable, "-m", "host", "run", "--reload", "--log-format", "text",
                             "--job-logs", "--http", http, *paths], env=env, preexec_fn=_die_with_parent,
                            start_new_session=True)

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):  # a closed terminal (SIGHUP) ends it, not reloads it
            host.send_signal(signal.SIGTERM if signum == signal.SIGHUP else signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)  # the host drains on the first, stops at once on the second
    code = host.wait()
    if server is not None:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
        click.echo("agenthost dev: local LiveKit server stopped", err=True)
    sys.exit(code if code >= 0 else 128 - code)
