"""Test agent: tries to read other processes of the host (their environment and memory), leaves a file in
/dev/shm, and tries to leave its cgroup; reports what it could do on topic "probe". The pids to try are the
job's metadata (a JSON list)."""

import json
import os

from host.context import JobContext


def try_read(pid: int) -> dict[str, str]:
    seen = {}
    for what in ("environ", "mem"):
        try:
            with open(f"/proc/{pid}/{what}", "rb") as fh:
                if what == "mem":
                    with open(f"/proc/{pid}/maps") as maps:
                        start = int(maps.readline().split("-")[0], 16)
                    fh.seek(start)
                seen[what] = fh.read(4096).decode("latin-1")
        except OSError as exc:
            seen[what] = f"denied: {exc.strerror}"
    return seen


def leave_cgroup() -> str:
    for path in ("/sys/fs/cgroup/memory/cgroup.procs", "/sys/fs/cgroup/pids/cgroup.procs",
                 "/sys/fs/cgroup/cgroup.procs"):
        if os.path.exists(path):
            try:
                with open(path, "w") as fh:
                    fh.write(str(os.getpid()))
            except OSError as exc:
                return f"denied: {exc.strerror}"
            return "moved"
    return "no cgroup file system"


def sysrq() -> str:
    """Ask the kernel's emergency key for its help text (harmless if it is let through)."""
    try:
        with open("/proc/sysrq-trigger", "w") as fh:
            fh.write("h")
    except OSError as exc:
        return f"denied: {exc.strerror}"
    return "written"


def kernel_settings() -> str:
    """Write the machine's hostname back unchanged through /proc/sys (harmless if it is let through)."""
    try:
        with open("/proc/sys/kernel/hostname") as fh:
            name = fh.read()
        with open("/proc/sys/kernel/hostname", "w") as fh:
            fh.write(name)
    except OSError as exc:
        return f"denied: {exc.strerror}"
    return "written"


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    with open(f"/dev/shm/agenthost-probe-{os.getpid()}", "wb") as fh:
        fh.write(b"\x01" * (8 * 1024 * 1024))
    report = {"read": {str(pid): try_read(pid) for pid in json.loads(ctx.job.metadata)},
              "shm": sorted(os.listdir("/dev/shm")), "cgroup": leave_cgroup(), "sysrq": sysrq(),
              "proc_sys": kernel_settings()}
    await ctx.room.local_participant.send_text(json.dumps(report), topic="probe")
