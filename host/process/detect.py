"""Which way this host bounds its job processes, found once at start: a cgroup of their own (v2, else v1) where
the host may create one, else rlimits (see host.process.cgroups)."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from host.process.cgroupfs import (
    CgroupError,
    Mount,
    clean_stale,
    mkdir,
    own_dir,
    parse_mountinfo,
    parse_proc_cgroup,
    read,
    remove_tree,
    write,
)
from host.process.cgroups import CgroupConfinement, Confinement

logger = logging.getLogger("agenthost.process")

V1_CONTROLLERS = ("memory", "pids", "cpu", "cpuacct")
REQUIRED = ("memory", "pids")


def detect(wanted: str = "auto", proc_root: str = "/proc", pid: int | None = None) -> Confinement:
    """The confinement this host can use, by `wanted` ('auto': a cgroup where one may be created, else
    rlimits; 'cgroup': a cgroup or CgroupError; 'rlimit': rlimits)."""
    if wanted == "rlimit":
        return Confinement()
    pid = pid or os.getpid()
    reasons = []
    try:
        mounts = parse_mountinfo(Path(proc_root, "self/mountinfo").read_text())
        where = parse_proc_cgroup(Path(proc_root, "self/cgroup").read_text())
    except OSError as exc:
        mounts, where = [], {}
        reasons.append(f"cannot read {proc_root}: {exc}")
    for attempt in (_v2, _v1):
        try:
            found = attempt(mounts, where, pid)
        except CgroupError as exc:
            reasons.append(str(exc))
            continue
        if found is not None:
            return found
    if wanted == "cgroup":
        raise CgroupError("no cgroup can be created for job processes: " + ("; ".join(reasons) or
                                                                            "no cgroup hierarchy is mounted"))
    if reasons:
        logger.debug("no cgroup for job processes: %s", "; ".join(reasons))
    return Confinement()


def _v2(mounts: list[Mount], where: dict[str, str], pid: int) -> CgroupConfinement | None:
    mount = next((m for m in mounts if m.fstype == "cgroup2"), None)
    if mount is None or "" not in where:
        return None
    own = own_dir(mount, where[""])
    available = set((read(own / "cgroup.controllers") or "").split())
    if not set(REQUIRED) <= available:
        raise CgroupError(f"cgroup v2 at {own} offers {', '.join(sorted(available)) or 'no controllers'} "
                          f"(memory and pids are needed)")
    enabled = set((read(own / "cgroup.subtree_control") or "").split())
    # the CPU controller waits for a job with a CPU bound (host.process.cgroups), unless the host's group
    # already hands it down: then the host's group is a CPU group anyway, and its jobs' groups are weighed in it
    wanted = [*REQUIRED, *(["cpu"] if "cpu" in enabled and "cpu" in available else [])]
    enable = " ".join(f"+{c}" for c in wanted)
    if not set(wanted) <= enabled:
        try:
            write(own / "cgroup.subtree_control", enable)
        except CgroupError:
            # a group with processes cannot hand controllers down: the host moves into a leaf of its own
            leaf = own / f"agenthost-{pid}-host"
            with contextlib.suppress(FileExistsError):
                mkdir(leaf)
            write(leaf / "cgroup.procs", str(pid))
            write(own / "cgroup.subtree_control", enable)
    base = own / f"agenthost-{pid}"
    with contextlib.suppress(FileExistsError):
        mkdir(base)
    write(base / "cgroup.subtree_control", enable)
    clean_stale(own)
    dirs = {c: base for c in (*wanted, *(["cpuacct"] if "cpu" in wanted else []))}
    return CgroupConfinement(2, dirs, (own, base) if "cpu" in available and "cpu" not in wanted else ())


def _v1(mounts: list[Mount], where: dict[str, str], pid: int) -> CgroupConfinement | None:
    base: dict[str, Path] = {}
    for controller in V1_CONTROLLERS:
        mount = next((m for m in mounts if m.fstype == "cgroup" and controller in m.controllers), None)
        if mount is None or controller not in where:
            continue
        own = own_dir(mount, where[controller])
        group = own / f"agenthost-{pid}"
        if not group.is_dir():
            try:
                mkdir(group)
            except CgroupError as exc:
                if controller in REQUIRED:
                    raise
                logger.debug("no %s cgroup for job processes: %s", controller, exc)
                continue
        clean_stale(own)
        base[controller] = group
    if not base:
        return None
    missing = [c for c in REQUIRED if c not in base]
    if missing:
        for group in base.values():
            remove_tree(group)
        raise CgroupError(f"cgroup v1 has no {' or '.join(missing)} hierarchy")
    if "memory" in base:
        with contextlib.suppress(CgroupError):  # limits of a job count what it and its children use
            write(base["memory"] / "memory.use_hierarchy", "1")
    return CgroupConfinement(1, base)
