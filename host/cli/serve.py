"""`agenthost run`: serve the agents."""

from __future__ import annotations

import os
import sys

import click

from host.cli.common import (
    DEFAULT_HTTP,
    DURATION,
    EXIT_INVALID,
    credentials_from,
    default_paths,
    http_address,
    load_or_exit,
    paths_argument,
    read_token,
    server_options,
)
from host.cli.group import cli
from host.errors import ListenError
from host.job.answer_priority import ANSWER_BOOST, ANSWER_PRIORITY, MOST


@cli.command()
@paths_argument
@server_options
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True)
@click.option("--drain-timeout", type=DURATION, default=60.0, show_default=True,
              help="Seconds running jobs may take to finish after SIGTERM before they are shut down.")
@click.option("--reload", "watch", is_flag=True,
              help="Watch agent files and agent code and reload on change (SIGHUP reloads without it).")
@click.option("--import-timeout", type=DURATION, default=10.0, show_default=True,
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
@click.option("--redis", "redis_url", envvar="AGENTHOST_REDIS_URL", default=None, metavar="URL",
              help="Keep the journal of running jobs in Redis (redis://HOST:PORT/DB), shared by several hosts: a "
                   "surviving host gives the calls of one that is lost their agent again, within about 4 s "
                   "[env AGENTHOST_REDIS_URL].")
@click.option("--redis-prefix", envvar="AGENTHOST_REDIS_PREFIX", default="agenthost:", show_default=True,
              help="The prefix of agenthost's keys in that Redis [env AGENTHOST_REDIS_PREFIX].")
@click.option("--job-logs", is_flag=True, envvar="AGENTHOST_JOB_LOGS",
              help="Keep each call's recent log lines and serve them at /logs (behind --http-token), for "
                   "`agenthost console --logs`; `agenthost dev` turns it on [env AGENTHOST_JOB_LOGS].")
@click.option("--answer-priority", type=click.IntRange(0, MOST), default=ANSWER_BOOST, show_default=True,
              metavar="LEVELS", envvar=ANSWER_PRIORITY,
              help="Nice levels a voice call's job process runs above the others from the end of its caller's "
                   "speech to its agent's answer (3 s at most), where the host may raise a priority (root with "
                   "CAP_SYS_NICE); 0: none [env AGENTHOST_ANSWER_PRIORITY].")
def run(paths: tuple[str, ...], url: str | None, api_key: str | None, api_secret: str | None,
        log_format: str, log_level: str, drain_timeout: float, watch: bool, import_timeout: float,
        http: str, http_token: str | None, http_token_file: str | None, load_threshold: float,
        server_target_load: float, job_limits: str, state_dir: str | None, redis_url: str | None,
        redis_prefix: str, job_logs: bool, answer_priority: int) -> None:
    """Serve every agent under PATHS (default ./agents.d) to a LiveKit server.

    A reload (SIGHUP, or a change seen with --reload) validates everything again and
    applies only a valid configuration; running jobs keep the definition and code they
    started with."""
    import asyncio
    import logging

    from host.secrets import restart_without_secrets, take_secrets

    passed = take_secrets()
    if passed is None:  # started by a person or a supervisor: hide what they gave from other processes
        restart_without_secrets({"api_secret": api_secret, "http_token": http_token, "redis_url": redis_url})
    else:  # started again without them: here they are
        api_secret = passed.get("api_secret", api_secret)
        http_token = passed.get("http_token", http_token)
        redis_url = passed.get("redis_url", redis_url)
    from host import logs
    from host.errors import AgentHostError
    from host.runtime.host import Host, HostOptions
    from host.runtime.journal import default_state_dir
    from host.runtime.load import LoadPolicy

    address = None if http == "off" else http_address(http, "--http")
    level = getattr(logging, log_level.upper())
    logs.setup(log_format, level)
    agent_paths = default_paths(paths)
    credentials = credentials_from(url, api_key, api_secret)
    token = read_token(http_token, http_token_file)
    # the host keeps its secrets: no process it starts (the import checks, the fork server, job processes)
    # inherits them in its environment
    for secret in ("LIVEKIT_API_SECRET", "AGENTHOST_HTTP_TOKEN", "AGENTHOST_HTTP_TOKEN_FILE", "AGENTHOST_REDIS_URL"):
        os.environ.pop(secret, None)
    from host.sandbox import PROTECTED_DIRS, not_dumpable

    not_dumpable()  # no job process may read the host's memory (its secrets) or attach to it
    state_dir = state_dir or default_state_dir()
    os.environ[PROTECTED_DIRS] = state_dir  # nor write the host's state (its journal of calls) where it can read
    os.environ[ANSWER_PRIORITY] = str(answer_priority)  # the most its job processes may run above it
    catalog = load_or_exit(agent_paths)
    try:
        host = Host(catalog, credentials, HostOptions(
            paths=tuple(agent_paths), log_format=log_format, log_level=level, drain_timeout=drain_timeout,
            watch=watch, import_timeout=import_timeout, http=address, http_token=token,
            load=LoadPolicy(load_threshold, server_target_load), job_limits=job_limits,
            state_dir=state_dir, redis_url=redis_url, redis_prefix=redis_prefix,
            job_logs=job_logs, answer_priority=answer_priority))
        asyncio.run(host.run())
    except (ListenError, AgentHostError) as exc:
        click.echo(f"agenthost: {exc}", err=True)
        sys.exit(EXIT_INVALID)
