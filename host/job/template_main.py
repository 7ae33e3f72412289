"""The code that runs inside an agent's template process: import the agent's code once, then fork job processes.

The fork server forks the template like a job process; the template imports what the agent's job processes
would import after the fork (the entrypoint's module, `setup`'s, livekit-agents' warm-up), freezes it for the
garbage collector and then, on each FORK from the host, forks a job process that starts from that image: it
shares those pages and imports nothing, and only runs `setup` (prewarm keeps its per-process contract). A fork
is only safe from a process with one thread, and a connection opened at import would be shared by every job
process, so a template whose imports started a thread or opened a socket says so instead of Ready, and the
host starts that agent's processes from the fork server as before.

While it serves forks, the host runs the template above its job processes where it may (host.process.priority):
under a burst, the CPU is taken by the jobs already connecting, and each fork would wait for its turn behind
them. Each job process goes back to the nice value the template had before (the host's) before it runs anything
else, so `setup` and the job run as the host does.

The template is the parent of the job processes it forks: it reaps each one (watching a pidfd per process) and
reports its exit code. The host gets, for each process, the host end of its pipe and a pidfd of its own. After
RETIRE, or when the host is gone, the template forks nothing more and exits once its last job process has.
"""

from __future__ import annotations

import contextlib
import gc
import os
import select
import signal
import socket
import sys
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection

from host import logs
from host.config.definitions import AgentDefinition
from host.config.entrypoints import load_function
from host.config.sources import ImportRecorder, Snapshot
from host.job import main as job_main
from host.job.answer_priority import answer_levels
from host.job.environment import apply_environment
from host.job.fork_safety import open_sockets, why_not_fork_safe
from host.job.inherited import let_go_of_the_hosts_descriptors
from host.job.pipe import send
from host.job.warmup import warm_up
from host.sandbox import agent_code_loaded, harden_template
from host.tracing import otel_env
from host.wire.messages import (
    FDS,
    FDS_DATA,
    FORK,
    REQUEST_FRAME,
    RETIRE,
    ForkFailed,
    InitFailed,
    NotForkSafe,
    TemplateReady,
    pack_exited,
    pack_forked,
)
from host.wire.protocol import encode

logger = job_main.logger

def import_agent_code(definition: AgentDefinition) -> None:
    """What every job process of this agent imports before its job: the agent's modules and the job runtime's."""
    if definition.api == "livekit-agents":
        from host.lkagents import runner

        runner.import_agent(definition)
    else:
        load_function(definition.entrypoint)
    if definition.setup is not None:
        load_function(definition.setup)
    import livekit.protocol.agent
    import livekit.rtc  # noqa: F401


def main(conn: Connection, definition: AgentDefinition, log_format: str, log_level: int, host_pid: int) -> None:
    """Process target (module-level so that it can be pickled to the fork server)."""
    sys.dont_write_bytecode = True  # see host.job.main.main
    let_go_of_the_hosts_descriptors()  # before any agent code runs
    nice, levels = os.getpriority(os.PRIO_PROCESS, 0), answer_levels()  # the host's, read before agent code runs
    if not job_main.take_output(conn):
        return
    logs.setup("json", log_level, logs.JobFields({"agent": definition.name, "pid": os.getpid(),
                                                      "template": True}))
    harden_template()  # what it says is logged as the template's
    # only the host decides when its processes stop; a handler, not SIG_IGN, so that a program the agent's code
    # starts at import can be stopped gracefully (see host.job.main.main)
    signal.signal(signal.SIGINT, job_main.not_ours)
    signal.signal(signal.SIGTERM, job_main.not_ours)
    tracing_env = otel_env(os.environ)  # the host's OTEL_* settings, before the agent's env may change them
    agent_code_loaded()  # from here on its memory holds the agent's environment, then its code
    apply_environment(definition)
    sockets_before = open_sockets()
    try:
        with ImportRecorder() as imported:
            import_agent_code(definition)
    except BaseException as exc:
        send(conn, InitFailed(f"{type(exc).__name__}: {exc}"))
        return
    unsafe = why_not_fork_safe(sockets_before)
    if unsafe is not None:
        send(conn, NotForkSafe(unsafe))
        return
    sources = job_main.imported_sources(definition, imported)
    try:
        template = Template(conn, JobSettings(definition, log_format, log_level, host_pid, sources, tracing_env,
                                              nice, levels))
    except OSError as exc:
        send(conn, InitFailed(f"cannot serve forks: {exc}"))
        return
    warm_up()  # the job runtime's code, specialized here once rather than in each job process
    gc.collect()
    gc.freeze()  # what was imported is shared with every job process: the collector must not write to it
    if send(conn, TemplateReady(os.getpid(), sources)):
        template.serve()


@dataclass(frozen=True)
class JobSettings:
    """What each forked job process's main is given, after its pipe (see host.job.main.main)."""

    definition: AgentDefinition
    log_format: str
    log_level: int
    host_pid: int
    sources: Snapshot
    tracing_env: tuple[tuple[str, str], ...]  # the host's OTEL_* settings
    nice: int  # the host's nice value, which each job process goes back to
    levels: int  # the most a job process may run above the host (host.job.answer_priority)


def read_exactly(fd: int, size: int) -> bytes:
    """`size` bytes from `fd`; EOFError if it ends first."""
    data = os.read(fd, size)
    while len(data) < size:
        more = os.read(fd, size - len(data))
        if not more:
            raise EOFError
        data += more
    return data


class Template:
    """Forks job processes on request and reaps them. Its loop calls epoll, os and struct directly, with no
    Python layer between (selectors, pickling, multiprocessing's connection), and builds what it can once:
    every page the template writes to after a fork is copied, being shared with the new process, so each
    object its loop touches costs each job process memory (`python bench/start_bench.py` counts the template's
    page faults per process)."""

    def __init__(self, conn: Connection, job: JobSettings) -> None:
        self.conn = conn
        self.job = job
        self.fd = conn.fileno()
        self.epoll = select.epoll()
        self.epoll.register(self.fd, select.EPOLLIN)
        self.sock = socket.socket(fileno=os.dup(self.fd))  # the descriptors of each fork are sent on it
        self.children: dict[int, int] = {}  # pidfd -> pid
        self.forking = True

    def serve(self) -> None:
        while self.forking or self.children:
            for fd, _events in self.epoll.poll():
                if fd == self.fd:
                    self._on_request()
                else:
                    self._reap(fd)

    def _on_request(self) -> None:
        try:
            request = read_exactly(self.fd, REQUEST_FRAME)[4:]
        except (EOFError, OSError):  # the host is gone: the job processes end by their own watchdogs
            self.epoll.unregister(self.fd)
            self.forking = False
            return
        if request == FORK and self.forking:
            self._fork()
        elif request == RETIRE:
            self.forking = False

    def _fork(self) -> None:
        try:
            host_end, job_end = socket.socketpair()
        except OSError as exc:
            self._fork_failed(exc)
            return
        try:
            pid = os.fork()
        except OSError as exc:
            host_end.close()
            job_end.close()
            self._fork_failed(exc)
            return
        if pid == 0:
            self._run_job(host_end, job_end)  # never returns
        job_end.close()
        pidfd = os.pidfd_open(pid)  # before any reap: this pid is the child until the template waits for it
        self.children[pidfd] = pid
        self.epoll.register(pidfd, select.EPOLLIN)
        with contextlib.suppress(OSError):  # the host is gone; the job process finds out by its watchdog
            os.write(self.fd, pack_forked(pid))
            self.sock.sendmsg(FDS_DATA, [(socket.SOL_SOCKET, socket.SCM_RIGHTS, FDS.pack(host_end.fileno(), pidfd))])
        host_end.close()

    def _fork_failed(self, exc: OSError) -> None:
        with contextlib.suppress(OSError):
            self.conn.send_bytes(encode(ForkFailed(f"cannot fork a job process: {exc}")))

    def _run_job(self, host_end: socket.socket, job_end: socket.socket) -> None:
        """In the forked job process: drop the template's descriptors, run the job process's main, exit."""
        code = 0
        try:
            os.setpriority(os.PRIO_PROCESS, 0, self.job.nice)  # first: the job process runs as the host does
            self.epoll.close()
            self.sock.close()
            self.conn.close()
            host_end.close()
            for fd in self.children:
                os.close(fd)
            job = self.job
            job_main.main(Connection(job_end.detach()), job.definition, job.log_format, job.log_level, job.host_pid,
                           job.sources, job.tracing_env, job.levels)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):  # a closed stream: nothing more to say on it
                    stream.flush()
            os._exit(code)

    def _reap(self, pidfd: int) -> None:
        pid = self.children.pop(pidfd)
        self.epoll.unregister(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        with contextlib.suppress(OSError):  # the host is gone: no one to tell
            os.write(self.fd, pack_exited(pid, os.waitstatus_to_exitcode(status)))
