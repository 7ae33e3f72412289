"""The kernel's cgroup files, as the host reads and writes them: where a process's groups are (from
/proc's mountinfo and cgroup files), a job's group (its processes, memory, CPU, kills by the memory limit; killed
and removed whole), and the groups hosts that are gone left behind. Which groups to make, and the bounds to
write in them, is host.process.cgroups's."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
from dataclasses import dataclass
from pathlib import Path

from host.errors import AgentHostError
from host.tree import alive

logger = logging.getLogger("agenthost.process")


class CgroupError(AgentHostError):
    """A cgroup the host needs could not be created or written."""


# -- reading where this process is -------------------------------------------------------------------------
@dataclass(frozen=True)
class Mount:
    point: str
    root: str  # the path within the hierarchy that is mounted at `point`
    fstype: str  # cgroup or cgroup2
    controllers: frozenset[str]  # v1: the controllers of the hierarchy; v2: empty (see cgroup.controllers)


def parse_mountinfo(text: str) -> list[Mount]:
    """The cgroup mounts in /proc/self/mountinfo's text."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        options = set(tail[2].split(","))
        mounts.append(Mount(_unescape(fields[4]), _unescape(fields[3]), tail[0], frozenset(options)))
    return mounts


def _unescape(path: str) -> str:
    """mountinfo writes a space, tab, newline or backslash in a path as an octal escape."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/self/cgroup's text as controller -> path; '' is the v2 hierarchy, 'name=systemd' a named one."""
    found = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(",") if parts[1] else [""]:
            found[controller] = parts[2]
    return found


def own_dir(mount: Mount, path: str) -> Path:
    """The directory of the cgroup at `path` (as /proc/self/cgroup gives it) under `mount`."""
    relative = os.path.relpath(path, mount.root) if mount.root != "/" else path.lstrip("/")
    return Path(mount.point) if relative in (".", "") else Path(mount.point, relative)


# -- one job's group ---------------------------------------------------------------------------------------
def write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as exc:
        raise CgroupError(f"cannot write {value!r} to {path}: {exc.strerror or exc}") from exc


def read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _stat(text: str | None) -> dict[str, int]:
    """A flat-keyed cgroup file (memory.stat, cpu.stat, memory.events) as a dict."""
    found = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            found[key] = int(value)
    return found


class JobGroup:
    """One job process's cgroup (one directory per hierarchy on v1, one on v2)."""

    def __init__(self, version: int, dirs: dict[str, Path]) -> None:
        self.version = version
        self.dirs = dirs  # controller ('memory', 'pids', 'cpu', 'cpuacct'; v2: all of them) -> directory
        self.oom_kills_at_start = 0

    def _dir(self, controller: str) -> Path | None:
        return self.dirs.get(controller)

    def pids(self) -> list[int]:
        found: set[int] = set()
        for d in set(self.dirs.values()):
            for line in (read(d / "cgroup.procs") or "").split():
                with contextlib.suppress(ValueError):
                    found.add(int(line))
        return sorted(found)

    def memory_bytes(self) -> int | None:
        """What the job's own pages take: its group's usage without the file cache it could drop."""
        d = self._dir("memory")
        if d is None:
            return None
        if self.version == 2:
            current, stat = read(d / "memory.current"), _stat(read(d / "memory.stat"))
            inactive = stat.get("inactive_file", 0)
        else:
            current, stat = read(d / "memory.usage_in_bytes"), _stat(read(d / "memory.stat"))
            inactive = stat.get("total_inactive_file", 0)
        if current is None:
            return None
        with contextlib.suppress(ValueError):
            return max(0, int(current) - inactive)
        return None

    def peak_memory_bytes(self) -> int | None:
        """The most memory the group has been charged at once (v2: memory.peak, where the kernel has it)."""
        d = self._dir("memory")
        text = read(d / ("memory.peak" if self.version == 2 else "memory.max_usage_in_bytes")) if d else None
        with contextlib.suppress(TypeError, ValueError):
            return int(text or "")
        return None

    def cpu_seconds(self) -> float | None:
        """CPU time used by every process that ran in the group."""
        if self.version == 2:
            d = self._dir("cpu") or self._dir("memory")
            usage = _stat(read(d / "cpu.stat")).get("usage_usec") if d else None
            return usage / 1e6 if usage is not None else None
        d = self._dir("cpuacct")
        text = read(d / "cpuacct.usage") if d else None
        with contextlib.suppress(TypeError, ValueError):
            return int(text or "") / 1e9
        return None

    def oom_kills(self) -> int:
        """How many processes of the group the kernel killed at its memory limit."""
        d = self._dir("memory")
        if d is None:
            return 0
        if self.version == 2:
            return _stat(read(d / "memory.events")).get("oom_kill", 0)
        stat = _stat(read(d / "memory.oom_control"))
        if "oom_kill" in stat:
            return stat["oom_kill"]
        failcnt = read(d / "memory.failcnt")  # an older kernel: the limit was hit, so reclaim or a kill
        return 1 if failcnt and failcnt.strip() not in ("", "0") else 0

    def kill(self) -> list[int]:
        """SIGKILL everything in the group; it starts nothing more meanwhile. The pids that were there."""
        pids_dir = self._dir("pids")
        if pids_dir is not None:
            with contextlib.suppress(CgroupError):
                write(pids_dir / "pids.max", "0")  # a fork now fails: the group cannot grow while it is killed
        if self.version == 2:
            d = next(iter(self.dirs.values()))
            if (d / "cgroup.kill").exists():
                found = self.pids()
                with contextlib.suppress(CgroupError):
                    write(d / "cgroup.kill", "1")
                    return found
        killed: list[int] = []
        for _ in range(3):  # a process forked just before pids.max was set is found on the next pass
            found = [p for p in self.pids() if p not in killed]
            if not found:
                break
            for pid in found:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            killed += found
        return killed

    def remove(self) -> bool:
        """Remove the group's directories; False while a process (or an unreaped one) is still in it."""
        done = True
        for d in set(self.dirs.values()):
            try:
                d.rmdir()
            except FileNotFoundError:
                continue
            except OSError:
                done = False
        return done


def kill_tree(top: Path) -> list[int]:
    """SIGKILL every process in the group `top` and the groups below it (a host that was killed left them)."""
    killed = []
    for procs in top.rglob("cgroup.procs"):
        for line in (read(procs) or "").split():
            with contextlib.suppress(ValueError, OSError):
                os.kill(int(line), signal.SIGKILL)
                killed.append(int(line))
    return killed


def remove_tree(top: Path) -> bool:
    """rmdir `top` and the groups below it, deepest first; False when one is still in use."""
    done = True
    with contextlib.suppress(OSError):
        for sub in [p for p in top.iterdir() if p.is_dir()]:
            done = remove_tree(sub) and done
    try:
        top.rmdir()
    except FileNotFoundError:
        pass
    except OSError:
        done = False
    return done


def mkdir(path: Path) -> None:
    try:
        path.mkdir()
    except FileExistsError:
        raise
    except OSError as exc:
        raise CgroupError(f"cannot create {path}: {exc.strerror or exc}") from exc


def clean_stale(own: Path) -> None:
    """Remove the empty groups of hosts that are gone (killed before they could remove their own)."""
    with contextlib.suppress(OSError):
        for entry in own.iterdir():
            m = re.fullmatch(r"agenthost-(\d+)(-host)?", entry.name)
            if m and entry.is_dir() and not alive(int(m.group(1))):
                left = kill_tree(entry)
                if left:
                    logger.warning("killed %d process(es) left by host %s, which is gone: %s", len(left),
                                   m.group(1), ", ".join(map(str, left)))
                remove_tree(entry)
