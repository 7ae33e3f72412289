"""Kernel-enforced bounds for each job process: a cgroup of its own, or rlimits where there is none.

Where the host may create cgroups (root, or a subtree delegated to it, as systemd's `Delegate=yes` does), each
job process gets one, below a group of the host's own (`agenthost-<host pid>`, under the host's cgroup, so any
bound set on the host still holds). In it the kernel enforces the agent's `limits`: a hard memory limit (no
sampling race: an allocation past it is reclaimed or the job is killed by the kernel, at once), a number of
processes and threads (a fork bomb stops there) and a CPU bound. When the job ends, everything in its group is
killed, so nothing it started outlives it. Both cgroup versions are served: v2 (one hierarchy, the norm on
current distributions and Kubernetes nodes) and v1 (a hierarchy per controller, as on older hosts and some VMs).
Which one is found once, at start (host.process.detect).

Where neither may be used (a container without delegation), the host falls back to rlimits, set on the job
process from outside (`prlimit`): its address space and, for a user other than root, its processes. The
address-space bound is a backstop with room for what allocators reserve without using (see RLIMIT_AS_RESERVED),
so the memory limit itself is enforced by the host's sampling (each second; the job is shut down, then
killed), and cleanup is by the process tree.

A job gets a CPU group only when its agent bounds its CPU (`cpu_limit`); other jobs are scheduled as plain
processes, as livekit-agents' are. A group per job, below the host's group, made the kernel weigh all the
host's calls together against the processes beside them (one entity where there were a call's threads each),
and voice calls answered later on a busy machine (on 2 cores at 4 concurrent calls, p50 1,295 and 1,646 ms
against 879 and 1,153: bench/voice_bench.py --cpu-groups, docs/voice.md). Where groups are used, the
host's group weighs as much as its bounded running jobs would without it (a group of the default weight would
give them all the share of one process), jobs share alike within it, and a template's group (v2, once the CPU
controller is on) weighs as the template's raised priority would (host.process.priority). cgroup v2 turns a
controller on for all the groups below a parent at once, so there the first job with a CPU bound turns CPU
groups on for every later job of the host. A job's CPU time is read on its group either way (v2's cpu.stat,
v1's cpuacct where it is its own hierarchy) or, where only a CPU group could count it, on its process tree.

A job process is placed as soon as the host learns its pid (from its template's Forked report, or when the
fork server has started it); what it allocated before that is charged to its template's group (v1 moves the
charge along).
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
from dataclasses import dataclass
from pathlib import Path

from host.config.definitions import Limits
from host.process.cgroupfs import (
    CgroupError,
    JobGroup,
    kill_tree,
    remove_tree,
    write,
)
from host.process.priority import ANSWER_BOOST, PRIORITY_BOOST
from host.tree import alive

logger = logging.getLogger("agenthost.process")

MB = 1024 * 1024
CPU_PERIOD_US = 100_000  # the CFS period a CPU bound is expressed in
MIN_QUOTA_US = 1_000  # the kernel's least quota: 0.01 CPU of that period
# rlimit mode: the address space a job process may add to what it had when it was forked, beyond twice its
# memory limit: what glibc reserves without using (a 64 MB arena per thread, up to 8 per CPU) and thread stacks
# (the rtc runtime and the VAD start threads), so a job within its limit is never refused memory
RLIMIT_AS_FACTOR = 2
RLIMIT_AS_RESERVED = 8 * 64 * MB * (os.cpu_count() or 1) + 512 * MB
MODES = ("auto", "cgroup", "rlimit")
# the file a group's CPU weight is written to, by cgroup version: (name, a plain process's weight, the most)
CPU_WEIGHT = {1: ("cpu.shares", 1024, 262_144), 2: ("cpu.weight", 100, 10_000)}
UNBOUNDED = "job processes run without their CPU bound"
UNWEIGHTED = "a CPU weight is left as it was (jobs may get less than their share on a busy machine)"


@dataclass(frozen=True)
class JobBounds:
    """What the kernel enforces for one job process; 0 means no bound."""

    memory_bytes: int
    pids: int
    cpus: float


def template_bounds(limits: Limits) -> JobBounds:
    """A template's: its agent's pids_limit only. `memory_limit_mb` is each job's own pages, while a template holds
    what all its jobs share (the models its agent's code loads), and a CPU bound would slow every fork."""
    return JobBounds(0, limits.pids_limit, 0.0)


def bounds_for(limits: Limits) -> JobBounds:
    return JobBounds(limits.memory_limit_mb * MB, limits.pids_limit, limits.cpu_limit)


def template_weight(version: int) -> tuple[str, str]:
    """The file and the CPU weight of a template's group: a process PRIORITY_BOOST nice levels above a plain one
    (each level is a factor of 1.25), as the template itself asks for, which within its own group would count
    for nothing against the jobs' groups."""
    name, one, most = CPU_WEIGHT[version]
    return name, str(min(most, round(one * 1.25 ** PRIORITY_BOOST)))


def host_weight(version: int, running: int) -> tuple[str, str]:
    """The file and the CPU weight of the host's group with `running` jobs: as many plain processes' (at
    least one's, which its templates and idle processes share while no job runs)."""
    name, one, most = CPU_WEIGHT[version]
    return name, str(min(most, one * max(1, running)))


# -- the host's confinement, by mode -----------------------------------------------------------------------
class Confinement:
    """Places job processes under their bounds. The base class is rlimit mode."""

    mode = "rlimit"
    answer_levels = ANSWER_BOOST  # nice levels a job waiting for its answer is favoured by (the host's setting)

    def describe(self) -> str:
        return ("rlimit (no cgroup may be created here: address space and process count set per job "
                "process, memory sampled, processes ended by tree)")

    def confine_template(self, pid: int, name: str, bounds: JobBounds) -> JobGroup | None:
        """Put a new template process in a group of its own under `bounds` (template_bounds): what agent code
        starts at import is bounded, and ends with it. Not in rlimit mode: the rlimits of a template would be its
        jobs' (they inherit them)."""
        return None

    def confine(self, pid: int, name: str, bounds: JobBounds) -> JobGroup | None:
        """Put a new job process under `bounds`; its group, if it has one. Raises CgroupError when the
        process could not be bounded (it must not run unbounded)."""
        try:
            if bounds.memory_bytes:
                _soft, hard = resource.prlimit(pid, resource.RLIMIT_AS)
                room = _virtual_size(pid) + RLIMIT_AS_FACTOR * bounds.memory_bytes + RLIMIT_AS_RESERVED
                limit = room if hard == resource.RLIM_INFINITY else min(room, hard)
                resource.prlimit(pid, resource.RLIMIT_AS, (limit, limit))
            if bounds.pids and os.geteuid() != 0:  # root is not held by RLIMIT_NPROC
                resource.prlimit(pid, resource.RLIMIT_NPROC, (_threads_of_user() + bounds.pids,) * 2)
        except ProcessLookupError:
            return None  # it is gone already: its exit is reported as usual
        except (OSError, ValueError) as exc:
            raise CgroupError(f"cannot set rlimits on process {pid}: {exc}") from exc
        return None

    def job_running(self, group: JobGroup | None, running: bool) -> None:
        """The job process of `group` has started a job (True) or ended (False)."""

    def close(self) -> None:
        """Remove what the host created (the host's own group); the job groups are gone by then."""


def _virtual_size(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as fh:
        return int(fh.read().rsplit(b")", 1)[1].split()[20])


def _threads_of_user() -> int:
    """Threads of this process's real user, as RLIMIT_NPROC counts them (by the Uid line of /proc/N/status:
    a non-dumpable process's /proc entry is owned by root whatever its user)."""
    uid, count = str(os.getuid()), 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(f"/proc/{name}/status") as fh:
                fields = dict(line.split(":", 1) for line in fh if ":" in line)
            if fields["Uid"].split()[0] == uid:
                count += int(fields["Threads"])
    return count


class CgroupConfinement(Confinement):
    """A cgroup per job process below the host's group `base` (a directory per controller on v1). On v2,
    `cpu_switch` are the groups, from the host's own down to `base`, whose children the CPU controller is turned
    on for when the first job with a CPU bound comes (empty: it is on, or there is none)."""

    def __init__(self, version: int, base: dict[str, Path], cpu_switch: tuple[Path, ...] = ()) -> None:
        self.version = version
        self.base = base
        self.mode = f"cgroup v{version}"
        self._cpu_switch = cpu_switch
        self._switched: tuple[Path, ...] = ()  # where this host turned the CPU controller on, undone at close
        self._running: dict[Path, bool] = {}  # the groups of job processes running a job -> in a CPU group
        self._templates: set[Path] = set()  # the templates' groups (weighed once they are CPU groups)
        self._unmet: set[str] = set()  # what a refused CPU setting leaves undone, each said once

    def describe(self) -> str:
        where = sorted({str(p) for p in self.base.values()})
        return f"cgroup v{self.version} ({', '.join(sorted(self.base))} under {', '.join(where)})"

    @property
    def can_bound_cpu(self) -> bool:
        return "cpu" in self.base or bool(self._cpu_switch)

    def _scheduled(self, bounds: JobBounds) -> dict[str, Path]:
        """The host's groups a process under `bounds` is placed below: the CPU hierarchy (and v1's cpuacct where
        it shares it) only with a CPU bound, or where CPU shares a hierarchy with memory or processes."""
        cpu = self.base.get("cpu")
        if bounds.cpus or self.version == 2 or cpu is None or cpu in (self.base.get("memory"), self.base.get("pids")):
            return dict(self.base)
        return {c: d for c, d in self.base.items() if not (c in ("cpu", "cpuacct") and d == cpu)}

    def _cpu_on(self) -> None:
        """v2: the CPU controller on below the host's group, where it may be; refused, it is undone where it was
        written and said once (the bounds of later jobs are then not enforced)."""
        switch, self._cpu_switch, written = self._cpu_switch, (), []
        try:
            for d in switch:
                write(d / "cgroup.subtree_control", "+cpu")
                written.append(d)
        except CgroupError as exc:
            for d in reversed(written):
                with contextlib.suppress(CgroupError):
                    write(d / "cgroup.subtree_control", "-cpu")
            self._unmet.add(UNBOUNDED)
            logger.warning("%s: %s", UNBOUNDED, exc)
            return
        self._switched = tuple(written)
        self.base = {**self.base, "cpu": self.base["memory"], "cpuacct": self.base["memory"]}
        self._templates = {t for t in self._templates if t.is_dir()}
        file, weight = template_weight(self.version)
        for template in self._templates:
            self._write_cpu(template / file, weight, UNWEIGHTED)
        self._weigh_host()

    def confine_template(self, pid: int, name: str, bounds: JobBounds) -> JobGroup | None:
        group = self.confine(pid, name, bounds)
        if group is not None:
            self._templates = {t for t in self._templates if t.is_dir()} | {next(iter(group.dirs.values()))}
        cpu = group.dirs.get("cpu") if group is not None else None
        if cpu is not None:
            file, weight = template_weight(self.version)
            self._write_cpu(cpu / file, weight, UNWEIGHTED)
        return group

    def confine(self, pid: int, name: str, bounds: JobBounds) -> JobGroup | None:
        if bounds.cpus and self._cpu_switch:
            self._cpu_on()
        dirs = {c: base / name for c, base in self._scheduled(bounds).items()}
        group = JobGroup(self.version, dirs)
        try:
            for d in set(dirs.values()):
                with contextlib.suppress(FileExistsError):
                    d.mkdir()
            self._set_bounds(group, bounds)
            for d in set(dirs.values()):
                write(d / "cgroup.procs", str(pid))
        except (OSError, CgroupError) as exc:
            if not alive(pid):
                group.remove()
                return None
            group.kill()
            group.remove()
            raise CgroupError(f"cannot place process {pid} in its cgroup: {exc}") from exc
        group.oom_kills_at_start = group.oom_kills()
        return group

    def _set_bounds(self, group: JobGroup, bounds: JobBounds) -> None:
        memory, pids, cpu = group.dirs.get("memory"), group.dirs.get("pids"), group.dirs.get("cpu")
        if self.version == 2:
            if memory is not None:
                write(memory / "memory.max", str(bounds.memory_bytes) if bounds.memory_bytes else "max")
                with contextlib.suppress(CgroupError, FileNotFoundError):  # no swap: no such file
                    if bounds.memory_bytes and (memory / "memory.swap.max").exists():
                        write(memory / "memory.swap.max", "0")
            if pids is not None:
                write(pids / "pids.max", str(bounds.pids) if bounds.pids else "max")
            if cpu is not None:
                quota = f"{_quota_us(bounds.cpus)} {CPU_PERIOD_US}" if bounds.cpus else "max"
                self._write_cpu(cpu / "cpu.max", quota, UNBOUNDED)
            return
        if memory is not None:
            with contextlib.suppress(CgroupError):  # deprecated on recent kernels; the charge then stays behind
                write(memory / "memory.move_charge_at_immigrate", "3")
            limit = str(bounds.memory_bytes) if bounds.memory_bytes else "-1"
            write(memory / "memory.limit_in_bytes", limit)
            if (memory / "memory.memsw.limit_in_bytes").exists():  # swap accounting: swap is not a way out
                with contextlib.suppress(CgroupError):
                    write(memory / "memory.memsw.limit_in_bytes", limit)
        if pids is not None:
            write(pids / "pids.max", str(bounds.pids) if bounds.pids else "max")
        if cpu is not None:
            self._write_cpu(cpu / "cpu.cfs_period_us", str(CPU_PERIOD_US), UNBOUNDED)
            self._write_cpu(cpu / "cpu.cfs_quota_us", str(_quota_us(bounds.cpus)) if bounds.cpus else "-1",
                            UNBOUNDED)

    def job_running(self, group: JobGroup | None, running: bool) -> None:
        if group is None or not group.dirs:
            return
        key, before = next(iter(group.dirs.values())), dict(self._running)
        if running:
            self._running[key] = "cpu" in group.dirs
        else:
            self._running.pop(key, None)
        if self._running != before:
            self._weigh_host()

    def _weigh_host(self) -> None:
        """The host's group weighs as its running jobs in CPU groups would as plain processes (v2, where the
        controller applies to all the groups below it once on: every running job)."""
        if "cpu" not in self.base:
            return
        running = len(self._running) if self.version == 2 else sum(self._running.values())
        file, weight = host_weight(self.version, running)
        self._write_cpu(self.base["cpu"] / file, weight, UNWEIGHTED)

    def _write_cpu(self, path: Path, value: str, unmet: str) -> None:
        """A CPU setting the kernel refuses (a bound above a quota set on the host's own group, say) is said
        once, with what it leaves `unmet`: unlike memory and processes, CPU use cannot harm another job beyond
        its share."""
        try:
            write(path, value)
        except CgroupError as exc:
            if unmet not in self._unmet:
                logger.warning("%s: %s", unmet, exc)
                self._unmet.add(unmet)

    def close(self) -> None:
        for base in set(self.base.values()):
            kill_tree(base)
            remove_tree(base)
        # the host's own group as it was: the kernel refuses while another group below it still uses the controller
        for d in reversed(self._switched):
            if d.is_dir():
                with contextlib.suppress(CgroupError):
                    write(d / "cgroup.subtree_control", "-cpu")


def _quota_us(cpus: float) -> int:
    return max(MIN_QUOTA_US, round(cpus * CPU_PERIOD_US))
