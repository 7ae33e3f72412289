"""What a process of the host does to itself so that agent code cannot read or change another agent's processes.

Every process of the host (the host, the fork server, templates, job processes) is made non-dumpable: no
process of the same user can read its memory or its environment (/proc/PID/mem, /environ) or attach a
debugger to it, unless it has CAP_SYS_PTRACE. So templates and job processes, which run agent code, give up
CAP_SYS_PTRACE (and the capabilities that would give it back: loading kernel modules, raw I/O, BPF) from
their bounding set too: even when the host runs as root, one agent's job cannot read another's `env`.

Each job process, where it may, also gets a mount namespace of its own with a private /dev/shm (a
tmpfs that no other process sees and that is gone when the job is), in which the cgroup file systems,
/proc/sys and /proc/sysrq-trigger are read-only and the folder of the host's fork server socket is an empty
one (a job that connected to it could have processes started outside its cgroup: the fork server does not
ask who connects); then it gives up CAP_SYS_ADMIN (and CAP_SYS_RESOURCE, so it
cannot raise its rlimits), so it cannot mount them again nor leave its namespace, and sets no_new_privs.

A template runs agent code too (what its modules do when imported), so it makes the same namespace for itself
before it imports them, and gives up CAP_SYS_ADMIN as well: that code can neither undo the namespace nor
mount anything. The job processes it forks, which no longer have CAP_SYS_ADMIN to make theirs, make it in a
user namespace of their own (root in it is root outside, uid and gid 0 mapped to themselves): there, what
they inherit from the template is locked (they cannot unmount it or make it writable again), and their
/dev/shm is still their own.

The child that checks agent modules at start and at each reload (host.config.entrypoints) runs their
import-time code with nothing a job would not have, in a namespace of its own as a job's: `harden_check`.

A host run as a user other than root has none of these capabilities: its templates (and jobs started from the
fork server) make the same namespaces in user namespaces of their own (the user mapped to itself), where the
kernel allows them, and the jobs a template forks keep its namespace (their /dev/shm is their template's,
shared with the agent's other jobs only: making their own would need them dumpable for a moment, with the
agent's environment in their memory). Where the kernel does not allow it (a container's seccomp, user
namespaces turned off), being non-dumpable is what keeps other agents out, /dev/shm is shared (files a job
leaves there count against its memory limit, as tmpfs pages are charged to the cgroup that wrote them) and the
fork server's folder is not hidden: its socket, which is the host's user's only, then lets a job of that user
ask it for a process outside the job's cgroup.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import resource
import sys
import sysconfig
from typing import Any

logger = logging.getLogger("agenthost.job")

# where the host's fork server listens (set by the host before it starts; inherited by every process it forks)
FORKSERVER_DIR = "AGENTHOST_FORKSERVER_DIR"
# Python started by the host for agent code (the fork server, the import check) does not put the folder it
# runs in first on its import path: a job may write there (`host/__init__.py`), and what is imported before
# the sandbox is made would run with the host's privileges. Set for the fork server only while it starts (the
# mark says so), so that the agent's own Python programs run as they would anywhere.
SAFE_PATH, SAFE_PATH_MARK = "PYTHONSAFEPATH", "AGENTHOST_SAFE_PATH"

PR_GET_DUMPABLE, PR_SET_DUMPABLE = 3, 4
PR_CAPBSET_DROP = 24
CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
CAPABILITY_VERSION_3 = 0x20080522

CLONE_NEWUSER = 0x10000000
PR_SET_NO_NEW_PRIVS = 38
CAP_NET_ADMIN, CAP_SYS_MODULE, CAP_SYS_RAWIO, CAP_SYS_PTRACE, CAP_SYS_ADMIN = 12, 16, 17, 19, 21
CAP_SYS_BOOT, CAP_SYS_NICE, CAP_SYS_RESOURCE, CAP_SYS_TIME, CAP_MKNOD, CAP_AUDIT_CONTROL = 22, 23, 24, 25, 27, 30
CAP_MAC_OVERRIDE, CAP_MAC_ADMIN, CAP_SYSLOG, CAP_PERFMON, CAP_BPF = 32, 33, 34, 38, 39
# what a template gives up: reading other processes, the machine's own settings, mounting (it could undo its
# namespace), a priority above its RLIMIT_NICE (a real-time one would starve the host: host.process.priority),
# raising its rlimits (RLIMIT_RTPRIO, RLIMIT_NICE), or the ways back to them
TEMPLATE_DROPS = (CAP_SYS_PTRACE, CAP_SYS_MODULE, CAP_SYS_RAWIO, CAP_MAC_OVERRIDE, CAP_MAC_ADMIN, CAP_PERFMON,
                  CAP_BPF, CAP_SYS_BOOT, CAP_SYS_TIME, CAP_NET_ADMIN, CAP_MKNOD, CAP_AUDIT_CONTROL, CAP_SYSLOG,
                  CAP_SYS_ADMIN, CAP_SYS_NICE, CAP_SYS_RESOURCE)
# and a job process, once its namespace is made (CAP_SYS_ADMIN again: in its user namespace, if it made one)
JOB_DROPS = TEMPLATE_DROPS
PRIORITY_BOOST = 10  # nice levels a template runs above its job processes, where the host may raise it
READ_ONLY = ("/proc/sys", "/proc/sysrq-trigger")  # the kernel's settings, and its emergency key
# what agent code could change to run code as the host, or in another agent, or as root at large: the machine's
# programs, libraries and settings, Python's installation (a `.pth` file in site-packages runs in every Python
# process), agenthost's own code; and what the host names in PROTECTED_DIRS (its state: the journal of calls)
SYSTEM = ("/etc", "/boot", "/bin", "/sbin", "/lib", "/lib64", "/usr/bin", "/usr/sbin", "/usr/lib", "/usr/lib64",
          "/usr/libexec", "/usr/local/bin", "/usr/local/sbin", "/usr/local/lib")
PROTECTED_DIRS = "AGENTHOST_PROTECTED_DIRS"  # os.pathsep-separated, set by the host before it starts processes
_HOST_DIR = os.path.dirname(os.path.abspath(__file__))


def _installation() -> tuple[str, ...]:
    """Python's installation: its prefixes whole (a venv's `pyvenv.cfg` names the Python that reads it), its
    standard library, site-packages and scripts, and the user's site-packages where Python reads them: looked
    up once, where this module is imported (the fork server, before any process runs agent code)."""
    import site

    # a venv or a Python of its own whole; the machine's (/usr, /usr/local) by their lib and bin folders only,
    # as an app may live beside them (/usr/src/app)
    prefixes = tuple(p for p in (sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix)
                     if os.path.realpath(p) not in ("/", "/usr", "/usr/local"))
    user = (site.getusersitepackages(),) if site.ENABLE_USER_SITE else ()
    try:
        paths = sysconfig.get_paths()
    except Exception:  # an installation it cannot read: its prefixes' usual places
        return (*prefixes, *user, *(os.path.join(p, sub) for p in {sys.prefix, sys.base_prefix}
                                    for sub in ("lib", "bin")))
    return (*prefixes, *user, *(v for k, v in paths.items()
                                if k in ("stdlib", "platstdlib", "purelib", "platlib", "scripts")))


_INSTALLATION = _installation()


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _libc() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_c = _libc()


def not_dumpable() -> bool:
    """No process of the same user (without CAP_SYS_PTRACE) may read this one's memory or attach to it."""
    return _c is not None and _c.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0


def _capability_sets() -> tuple[Any, Any] | None:
    """This process's capability sets (header, data) as capget reads them; None where it cannot."""
    if _c is None:
        return None
    header = _CapHeader(CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    return (header, data) if _c.capget(ctypes.byref(header), data) == 0 else None


def has_capability(cap: int) -> bool:
    """Whether this process holds `cap` in its effective set."""
    sets = _capability_sets()
    word, bit = divmod(cap, 32)
    return sets is not None and bool(sets[1][word].effective & 1 << bit)


def drop_capabilities(caps: tuple[int, ...]) -> bool:
    """Give up `caps`: from the bounding set (no program this process runs gets them back) and from the
    effective, permitted and inheritable sets. False when this process could not (it did not have them)."""
    if _c is None:
        return False
    for cap in caps:
        _c.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)  # EINVAL for a capability this kernel does not know: nothing to drop
    sets = _capability_sets()
    if sets is None:
        return False
    header, data = sets
    for cap in caps:
        word, bit = divmod(cap, 32)
        mask = ~(1 << bit) & 0xFFFFFFFF
        data[word].effective &= mask
        data[word].permitted &= mask
        data[word].inheritable &= mask
    return bool(_c.capset(ctypes.byref(header), data) == 0)


def no_real_time() -> None:
    """No real-time priority without CAP_SYS_NICE either (RLIMIT_RTPRIO 0: lowering a limit is always allowed)."""
    with contextlib.suppress(OSError, ValueError):
        resource.setrlimit(resource.RLIMIT_RTPRIO, (0, 0))


def nice_floor(rlimit_nice: int) -> int:
    """The lowest nice value RLIMIT_NICE lets a process without CAP_SYS_NICE take (the limit counts 1, nice 19,
    to 40, nice -20)."""
    return -20 if rlimit_nice == resource.RLIM_INFINITY else 20 - rlimit_nice


def hold_priority(levels: int) -> None:
    """This process runs as other processes do (a real-time policy inherited is given up) and may take nice
    values at most `levels` below its own (RLIMIT_NICE lowered: where the host may not raise priorities
    itself, the limit is what lets it raise this process's, host.process.priority)."""
    with contextlib.suppress(OSError):
        if os.sched_getscheduler(0) not in (os.SCHED_OTHER, os.SCHED_BATCH, os.SCHED_IDLE):
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    limit = 20 - max(-20, os.getpriority(os.PRIO_PROCESS, 0) - levels)  # what makes that nice_floor
    with contextlib.suppress(OSError, ValueError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NICE)
        lowered = [limit if n == resource.RLIM_INFINITY else min(n, limit) for n in (soft, hard)]
        resource.setrlimit(resource.RLIMIT_NICE, (lowered[0], lowered[1]))


def _mount(source: str | None, target: str, fstype: str | None, flags: int, options: str | None) -> None:
    if _c.mount(source and source.encode(), target.encode(), fstype and fstype.encode(), flags,
                options and options.encode()) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def _mounts() -> list[tuple[str, str, bool]]:
    """Each mount point of this process's namespace, with its file system type and whether it is read-only."""
    mounts = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            fields = left.split()
            if len(fields) > 5:
                mounts.append((fields[4], right.split(" ", 1)[0], "ro" in fields[5].split(",")))
    return mounts


def _to_make_read_only() -> tuple[list[str], list[str]]:
    """The cgroup file systems, and the kernel settings in READ_ONLY, not read-only yet (a template made them so
    for the job processes it forks)."""
    mounts = _mounts()
    cgroups = [point for point, fstype, ro in mounts if not ro and (
        fstype in ("cgroup", "cgroup2") or (fstype == "tmpfs" and point == "/sys/fs/cgroup"))]
    done = {point for point, _, ro in mounts if ro}
    return cgroups, [path for path in READ_ONLY if path not in done and os.path.exists(path)]


def protected(extra: str = "", *writable: str) -> list[str]:
    """The folders made read-only in the namespace of a process running agent code (SYSTEM, Python's
    installation, agenthost's code, and `extra`'s), as real paths, each once (none inside another), and none
    holding one of `writable` (the folder the host serves from, where agents may write: /usr/src/app, say;
    the home folder, where their libraries keep caches)."""
    paths = [*SYSTEM, _HOST_DIR, *_INSTALLATION, *(p for p in extra.split(os.pathsep) if p)]
    real = sorted({os.path.realpath(p) for p in paths if os.path.isdir(p)})
    held = [os.path.join(os.path.realpath(w), "") for w in writable if w]
    kept: list[str] = []
    for path in real:  # sorted: a folder comes before what is inside it
        inside = os.path.join(path, "")
        if path == "/" or any(w.startswith(inside) for w in held) or \
                any(inside.startswith(os.path.join(k, "")) for k in kept):
            continue
        kept.append(path)
    return kept


def _protect(paths: list[str], said: int = logging.DEBUG) -> None:
    """Each of `paths` read-only here (one that cannot be is left as it is, and said at `said`: the rest still
    are)."""
    done = {point for point, _, ro in _mounts() if ro}
    for path in paths:
        if path in done:  # made so by the template this process was forked from
            continue
        try:
            _read_only(path)
        except OSError as exc:
            logger.log(said, "%s is not read-only for the agent's code: %s", path, exc)


# what a remount keeps of a mount's flags (statvfs's ST_* values are MS_*'s): in a user namespace they are locked,
# and a remount that would drop one is refused
_KEPT_FLAGS = MS_NOSUID | MS_NODEV | MS_NOEXEC | 1024 | 2048  # and MS_NOATIME, MS_NODIRATIME
ST_RELATIME, MS_RELATIME = 4096, 1 << 21


def _read_only(path: str) -> None:
    """`path` bound on itself and made read-only, its other flags as they were."""
    _mount(path, path, None, MS_BIND | MS_REC, None)
    flags = os.statvfs(path).f_flag
    kept = (flags & _KEPT_FLAGS) | (MS_RELATIME if flags & ST_RELATIME else 0)
    _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | kept, None)


def _own_user_namespace() -> bool:
    """A user namespace and a mount namespace of this process's own, its uid and gid mapped to themselves (root
    in it is root outside, a user is that user): how a process without CAP_SYS_ADMIN (a host run as a user, or
    a job forked by a template) makes its namespace. It must have one thread."""
    uid, gid = os.geteuid(), os.getegid()
    # a user's non-dumpable process may not write its own maps (its /proc files are root's): it is made dumpable
    # for these three writes, which is safe only before agent code is in its memory (a template before its
    # imports, a job started from the fork server); a job forked from a template keeps the template's namespace
    was_dumpable = uid == 0 or _c.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 1
    if not was_dumpable and _agent_code_loaded:
        return False
    if _c.unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0:
        return False
    if not was_dumpable:
        _c.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
    try:
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as fh:
                fh.write(text)
    except OSError as exc:  # the process would go on as nobody: it must not run at all
        raise RuntimeError(f"a user namespace was made, but its uid and gid maps could not be written: {exc}") \
            from exc
    finally:
        if not was_dumpable:
            _c.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    return True


_agent_code_loaded = False  # set in a template before it imports the agent's code (see `agent_code_loaded`)


def agent_code_loaded() -> None:
    """This process's memory holds an agent's code and environment from now on (a template, before it imports
    them): the job processes forked from it never make themselves dumpable, not even for a moment."""
    global _agent_code_loaded
    _agent_code_loaded = True


def private_namespace(shm_bytes: int, said: int = logging.DEBUG) -> bool:
    """A mount namespace of this process's own: a private /dev/shm of at most `shm_bytes` (0: the tmpfs
    default), the fork server's folder hidden, and the cgroup file systems, kernel settings and `protected`
    folders read-only.
    Made with CAP_SYS_ADMIN (root), else in a user namespace of its own; False when neither is allowed (user
    namespaces off, or a container's seccomp), logged at `said` (a template says it; each of its jobs would say
    it again)."""
    if _c is None:
        return False
    if _c.unshare(CLONE_NEWNS) != 0 and not _own_user_namespace():
        err = ctypes.get_errno()
        logger.log(said, "no mount namespace of its own for this process (its /dev/shm, the cgroup file systems "
                   "and the fork server's folder are as the host's): %s", os.strerror(err))
        return False
    private = made = False
    try:
        _mount(None, "/", None, MS_REC | MS_PRIVATE, None)  # nothing mounted here is seen outside
        private = True
        if os.path.isdir("/dev/shm"):
            size = f",size={shm_bytes}" if shm_bytes else ""
            _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777{size}")
        hidden = os.environ.pop(FORKSERVER_DIR, None)
        if hidden and os.path.isdir(hidden):
            _mount("tmpfs", hidden, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700,size=4k")
        cgroups, settings = _to_make_read_only()
        for point in cgroups:
            _mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
        for path in settings:
            _read_only(path)
        made = True
    except OSError as exc:
        logger.warning("no private /dev/shm or read-only cgroup and kernel settings for this job process: %s", exc)
    if private:  # (only there: a bind mount in a namespace that shares its mounts would reach the host's)
        _protect(protected(os.environ.pop(PROTECTED_DIRS, ""), os.getcwd(), os.environ.get("HOME", "")), said)
    return made


def harden_template() -> None:
    """Before a template imports agent code: its namespace made while it may (root), then what it gives up; and
    whether the job processes it forks can make theirs, said once here rather than by each of them."""
    not_dumpable()
    private_namespace(0, said=logging.WARNING)
    drop_capabilities(TEMPLATE_DROPS)
    no_real_time()
    hold_priority(PRIORITY_BOOST)
    if not _user_namespaces_work():
        logger.warning("user namespaces are not allowed here: the job processes of this template share its "
                       "/dev/shm (and the rest of its namespace)")


def _user_namespaces_work() -> bool:
    """Whether a child of this process (as a job it forks) may make a user namespace."""
    pid = os.fork()
    if pid == 0:
        os._exit(0 if _c is not None and _c.unshare(CLONE_NEWUSER) == 0 else 1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def harden_check() -> None:
    """Before the checking child imports agent modules: what a job gives up, its namespace included (the fork
    server's folder hidden: a module's code connecting to the fork server would be given a process with the
    host's privileges). No program it runs gains privileges (setuid bits, file capabilities) either."""
    private_namespace(0)
    _give_up(0)


def _give_up(levels: int) -> None:
    """What every process running agent code gives up, once its namespace is made: it may take a priority at
    most `levels` above its own (what the host may give it)."""
    not_dumpable()
    drop_capabilities(JOB_DROPS)
    no_real_time()
    hold_priority(levels)
    if _c is not None:
        _c.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def harden_job(shm_bytes: int, answer_levels: int) -> None:
    """Before a job process runs agent code (its `setup`, its job): its namespace made where it may, then what
    the checking child gives up, but a priority `answer_levels` above its own (its answers favoured)."""
    private_namespace(shm_bytes)
    _give_up(answer_levels)
