"""Versions of one agent: which one a new job gets, and which ones fail too often to get any.

`choose` is pure: the versions' weights and a job's routing value (its room, or the value of the metadata
field `route_by` names) give a version. The same value gives the same version while the weights are
unchanged, so every job of one room (or one customer) runs the same code. `Health` is the job table's
record of each version's last jobs: a version failing `take_out.failures` of its last `take_out.of_last`
jobs is out of rotation (no new job) until the next reload (its fix may be in its code, which its definition
does not show; a version still failing is taken out again). Only a job's own failures count: the entrypoint
raising, its process dying, its process never starting.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from host.config.definitions import AgentDefinition


@dataclass(frozen=True)
class Weighted:
    version: str
    weight: int


def choose(versions: Sequence[Weighted], value: str) -> str | None:
    """The version for a job routed by `value`, by weight; None when every weight is 0."""
    ordered = sorted(versions, key=lambda v: v.version)
    total = sum(v.weight for v in ordered)
    if total <= 0:
        return None
    digest = int.from_bytes(hashlib.sha256(value.encode()).digest()[:8], "big")
    point = digest % total
    for v in ordered:
        if point < v.weight:
            return v.version
        point -= v.weight
    raise AssertionError("unreachable: point < total")


def routing_value(route_by: str | None, metadata: str, room: str) -> str:
    """What picks a job's version: the metadata field `route_by` names, when the job has it; else its room."""
    if route_by:
        try:
            fields = json.loads(metadata) if metadata else None
        except ValueError:
            fields = None
        if isinstance(fields, dict) and route_by in fields:
            return f"{route_by}={json.dumps(fields[route_by], sort_keys=True)}"
    return f"room={room}"


VERSION_FAILURES = frozenset({"job_error", "process_exited", "memory_limit", "no_process"})  # the job's own doing


class Health:
    """Each version's last jobs (failed or not), and the versions taken out of rotation. Written by the job
    table only: as its jobs end, and when a reload is applied."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[AgentDefinition, deque[bool]]] = {}
        self._out: dict[str, AgentDefinition] = {}

    def record(self, definition: AgentDefinition, failed: bool) -> bool:
        """Note a job of `definition` that ended; True when this takes the version out of rotation."""
        judged, last = self._last.get(definition.key, (None, None))
        if judged != definition or last is None:  # a reload changed the definition: a fresh record
            last = deque(maxlen=definition.take_out.of_last)
            self._last[definition.key] = (definition, last)
        last.append(failed)
        if sum(last) >= definition.take_out.failures and not self.is_out(definition):
            self._out[definition.key] = definition
            return True
        return False

    def reloaded(self) -> list[AgentDefinition]:
        """A reload was applied: every version back in rotation, each with a fresh record; those that were out."""
        back = list(self._out.values())
        self._out.clear()
        self._last.clear()
        return back

    def is_out(self, definition: AgentDefinition) -> bool:
        return self._out.get(definition.key) == definition

    def failures(self, definition: AgentDefinition) -> int:
        judged, last = self._last.get(definition.key, (None, None))
        return sum(last) if judged == definition and last is not None else 0


def in_rotation(definitions: Sequence[AgentDefinition], health: Health,
                broken: Sequence[bool]) -> list[AgentDefinition]:
    """The versions that take calls: not taken out, nor `broken` (unable to start processes); every version
    when none is left (a call still gets one: `pick`)."""
    return [d for d, b in zip(definitions, broken, strict=True) if not b and not health.is_out(d)] or \
        list(definitions)


def max_jobs(definitions: Sequence[AgentDefinition]) -> int:
    """The most jobs `definitions` take together (each bounds its own): 0, no bound, when one has none."""
    bounds = [d.limits.max_jobs for d in definitions]
    return 0 if 0 in bounds else sum(bounds)


def bounded(definitions: Sequence[AgentDefinition], health: Health, broken: Sequence[bool],
            running: Callable[[AgentDefinition], int]) -> tuple[int, int]:
    """An agent's jobs held against its bound, and that bound: both of its versions that take calls (a job of
    a version taken out holds no room on the others)."""
    taking = in_rotation(definitions, health, broken)
    return sum(running(d) for d in taking), max_jobs(taking)


def pick(definitions: Sequence[AgentDefinition], health: Health, room: str, metadata: str,
         avoid: str | None = None) -> AgentDefinition:
    """The version of a new job among an agent's `definitions`: by weight, versions taken out (and `avoid`)
    left out; when that leaves no weight, one of those left though at weight 0 (the version rolled back from,
    say: better than one failing); when none is left, by weight alone (a caller always gets an agent)."""
    if len(definitions) == 1:
        return definitions[0]
    value = routing_value(definitions[0].route_by, metadata, room)
    by_version = {d.version or "": d for d in definitions}
    usable = [d for d in definitions if not health.is_out(d) and d.version != avoid]
    for weighted in ([Weighted(d.version or "", d.weight) for d in usable],
                     [Weighted(d.version or "", 1) for d in usable],
                     [Weighted(d.version or "", d.weight) for d in definitions]):
        chosen = choose(weighted, value)
        if chosen is not None:
            return by_version[chosen]
    return definitions[0]
