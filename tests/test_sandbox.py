"""What a process running agent code gives up (host.sandbox), in real child processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig

import pytest

from host.sandbox import CAP_SYS_ADMIN, CAP_SYS_PTRACE

PROBE = """
import ctypes, json, os, sys
from host import sandbox
getattr(sandbox, sys.argv[1])(*map(int, sys.argv[2:]))
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
hidden = os.environ.get("PROBE_DIR")
print(json.dumps({"cap_eff": int(status["CapEff"], 16), "no_new_privs": status["NoNewPrivs"].strip(),
                  "dumpable": ctypes.CDLL(None).prctl(3, 0, 0, 0, 0),
                  "sees": sorted(os.listdir(hidden)) if hidden else None,
                  "shm": sorted(os.listdir("/dev/shm"))}))
"""


def probe(*args: str, env: dict[str, str] | None = None) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True,
                         env={**os.environ, **(env or {})})
    return json.loads(out.stdout)


def test_the_check_of_agent_modules_gives_up_what_a_job_does(tmp_path):
    from host.sandbox import FORKSERVER_DIR

    (tmp_path / "listener-1").write_text("the fork server's socket would be here")
    seen = probe("harden_check", env={FORKSERVER_DIR: str(tmp_path), "PROBE_DIR": str(tmp_path)})
    assert seen["dumpable"] == 0 and seen["no_new_privs"] == "1"
    assert not seen["cap_eff"] & (1 << CAP_SYS_PTRACE | 1 << CAP_SYS_ADMIN)
    if os.geteuid() == 0:  # a namespace of its own, as a job's: the fork server out of its reach
        assert seen["sees"] == [], seen


@pytest.mark.skipif(os.geteuid() != 0, reason="a job has a mount namespace of its own only as root")
def test_a_job_as_root_has_its_own_dev_shm_and_cannot_see_the_fork_servers_folder(tmp_path):
    from host.sandbox import FORKSERVER_DIR

    (tmp_path / "listener-1").write_text("the fork server's socket would be here")
    marker = f"agenthost-test-{os.getpid()}"
    (open(f"/dev/shm/{marker}", "w")).close()
    try:
        seen = probe("harden_job", "0", "5", env={FORKSERVER_DIR: str(tmp_path), "PROBE_DIR": str(tmp_path)})
    finally:
        os.unlink(f"/dev/shm/{marker}")
    assert seen["sees"] == [] and marker not in seen["shm"]
    assert seen["dumpable"] == 0 and seen["no_new_privs"] == "1"
    assert not seen["cap_eff"] & (1 << CAP_SYS_PTRACE | 1 << CAP_SYS_ADMIN)
    assert os.listdir(tmp_path) == ["listener-1"]  # only hidden from the job


TEMPLATE_AND_JOB = """
import ctypes, json, os, sys
from host import sandbox
def seen():
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
    hidden = os.environ.get("PROBE_DIR")
    return {"cap_eff": int(status["CapEff"], 16), "sees": sorted(os.listdir(hidden)),
            "shm": sorted(os.listdir("/dev/shm")),
            "writable_cgroups": [p for p, kind, ro in sandbox._mounts() if kind.startswith("cgroup") and not ro],
            "writable_settings": [p for p, _, ro in sandbox._mounts() if p in sandbox.READ_ONLY and not ro],
            "dumpable": ctypes.CDLL(None).prctl(3, 0, 0, 0, 0), "wrote": wrote(), "raised": raised()}
def raised():  # a priority above the host's: a real-time one would starve it
    done = []
    for name, call in (("real-time", lambda: os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))),
                       ("nice", lambda: os.setpriority(os.PRIO_PROCESS, 0, os.getpriority(os.PRIO_PROCESS, 0) - 1))):
        try:
            call()
            done.append(name)
        except OSError:
            pass
    return done
def wrote():  # where it could write: the host's state, its site-packages (a .pth file runs in every Python)
    done = []
    for folder in (os.environ.get("PROTECTED_PROBE"), os.environ.get("SITE_PROBE")):
        if folder:
            try:
                with open(os.path.join(folder, f"agenthost-probe-{os.getpid()}.pth"), "w") as fh:
                    fh.write("")
                done.append(folder)
            except OSError:
                pass
    return done
sandbox.harden_template()
sandbox.agent_code_loaded()  # as the template does before it imports the agent's code
template = seen()
open("/dev/shm/the-templates", "w").close()
read_end, write_end = os.pipe()
if os.fork() == 0:
    sandbox.harden_job(0, 5)
    os.write(write_end, json.dumps(seen()).encode())
    os._exit(0)
os.close(write_end)
job = json.loads(os.read(read_end, 65536))
os.wait()
print(json.dumps({"template": template, "job": job}))
"""


def user_namespaces() -> bool:
    try:
        with open("/proc/sys/user/max_user_namespaces") as fh:
            return int(fh.read()) > 0
    except (OSError, ValueError):
        return False


@pytest.mark.skipif(os.geteuid() != 0 or not user_namespaces(), reason="namespaces of their own only as root, "
                    "and for a template's jobs only where user namespaces are allowed")
def test_a_template_cannot_undo_its_namespace_and_the_jobs_it_forks_still_make_theirs(tmp_path):
    """Agent code imported in a template runs without CAP_SYS_ADMIN, with the fork server's folder hidden and the
    cgroup file systems read-only; a job it forks has a /dev/shm of its own all the same (in a user namespace)."""
    from host.sandbox import FORKSERVER_DIR, PROTECTED_DIRS

    (tmp_path / "listener-1").write_text("the fork server's socket would be here")
    state = tmp_path.parent / f"{tmp_path.name}-state"  # the host's state: its journal of calls
    state.mkdir()
    out = subprocess.run([sys.executable, "-c", TEMPLATE_AND_JOB], capture_output=True, text=True, check=True,
                         env={**os.environ, FORKSERVER_DIR: str(tmp_path), "PROBE_DIR": str(tmp_path),
                              PROTECTED_DIRS: str(state), "PROTECTED_PROBE": str(state),
                              "SITE_PROBE": sysconfig.get_paths()["purelib"]})
    seen = json.loads(out.stdout)
    for side in ("template", "job"):
        assert seen[side]["wrote"] == [], seen  # neither the host's state nor Python's installation
        assert seen[side]["raised"] == [], seen
        assert seen[side]["sees"] == [], seen
        assert not seen[side]["cap_eff"] & (1 << CAP_SYS_ADMIN | 1 << CAP_SYS_PTRACE), seen
        assert seen[side]["writable_cgroups"] == [] and seen[side]["writable_settings"] == [], seen
    assert "the-templates" not in seen["job"]["shm"], seen  # its own /dev/shm, not the template's
    assert "no mount namespace" not in out.stderr and "not allowed" not in out.stderr, out.stderr
    assert os.listdir(tmp_path) == ["listener-1"]


@pytest.mark.skipif(os.geteuid() != 0 or not user_namespaces(), reason="run as root, to become a user; and user "
                    "namespaces allowed")
def test_a_host_run_as_a_user_gives_its_templates_and_jobs_namespaces_of_their_own():
    """As a user (nobody), a template makes its namespace in a user namespace before it imports agent code: the
    fork server's folder hidden (its socket would let a job of that user start processes outside its cgroup),
    /dev/shm its own, the cgroup file systems read-only; the job it forks keeps that namespace, and is never
    dumpable (the agent's environment is in its memory); they stay that user."""
    import contextlib
    import io
    import shutil
    import tempfile

    from host.sandbox import FORKSERVER_DIR

    folder = tempfile.mkdtemp(prefix="agenthost-test-fs-")
    os.chmod(folder, 0o755)  # the user could list it
    with open(os.path.join(folder, "listener-1"), "w") as fh:
        fh.write("the fork server's socket would be here")
    site_packages = sysconfig.get_paths()["purelib"]  # read while Python's installation is readable
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the user's process: Python is already loaded (its files may be root's only)
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.environ.update({FORKSERVER_DIR: folder, "PROBE_DIR": folder, "SITE_PROBE": site_packages})
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(TEMPLATE_AND_JOB, {"__name__": "probe"})
            os.write(write_end, json.dumps({**json.loads(out.getvalue()), "uid": os.geteuid()}).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as fh:
        body = fh.read()
    os.waitpid(pid, 0)
    try:
        assert body, "the user's template probe said nothing (see the test's stderr)"
        seen = json.loads(body)
        assert seen["uid"] == 65534
        for side in ("template", "job"):
            assert seen[side]["sees"] == [], seen
            assert seen[side]["writable_cgroups"] == [] and seen[side]["writable_settings"] == [], seen
            assert seen[side]["dumpable"] == 0, seen
        assert "the-templates" in seen["job"]["shm"], seen  # its template's /dev/shm (that agent's only)
        assert os.listdir(folder) == ["listener-1"]
        assert not [n for n in os.listdir("/dev/shm") if n == "the-templates"]  # not the machine's
    finally:
        shutil.rmtree(folder)
