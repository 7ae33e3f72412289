"""Test agent module: at import, in whatever process imports it (the host's checking child, a template, a
job process), appends what that process may do to the file IMPORT_PROBE_OUT names: its pid, its
parent, whether it may read its parent's environment block, whether it keeps CAP_SYS_PTRACE or CAP_SYS_ADMIN,
and which cgroup file systems it could write to; and it leaves a process behind, in a session of its own, that
sleeps."""

import json
import os
import subprocess
from pathlib import Path

from host.context import JobContext

_out = os.environ.get("IMPORT_PROBE_OUT")
if _out:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    try:
        Path(f"/proc/{os.getppid()}/environ").read_bytes()
        parent_environ = "read"
    except OSError as exc:
        parent_environ = type(exc).__name__
    writable_cgroups = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left_side, _, right_side = line.partition(" - ")
        fields = left_side.split()
        if right_side.startswith(("cgroup ", "cgroup2 ")) and "ro" not in fields[5].split(","):
            writable_cgroups.append(fields[4])
    left = subprocess.Popen(["sleep", "600"], start_new_session=True)
    with open(_out, "a") as fh:
        fh.write(json.dumps({"pid": os.getpid(), "ppid": os.getppid(), "parent_environ": parent_environ,
                             "ptrace": bool(int(status["CapEff"], 16) & (1 << 19)),
                             "sys_admin": bool(int(status["CapEff"], 16) & (1 << 21)),
                             "writable_cgroups": writable_cgroups,
                             "no_new_privs": status["NoNewPrivs"].strip(), "left": left.pid}) + "\n")


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
