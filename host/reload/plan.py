"""Reload as a value: what a newly loaded catalog changes against the agents being served.

`plan` compares by key (the agent's name, or `name@version` for one of its versions) and returns a `Plan`;
the host applies it. Nothing here
touches processes or connections, so the decision can be tested on its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from host.config.definitions import AgentDefinition


@dataclass(frozen=True)
class Change:
    """An agent that is served before and after the reload."""

    old: AgentDefinition
    new: AgentDefinition
    definition_changed: bool  # something a user would call a change (not only its line in the file)
    code_changed: bool  # a project source file its processes imported changed on disk

    @property
    def name(self) -> str:
        return self.new.name

    @property
    def key(self) -> str:
        return self.new.key

    @property
    def changed_keys(self) -> tuple[str, ...]:
        """The top-level keys of the agent file whose values changed (`file` when it moved to another file)."""
        return tuple(f.name for f in dataclasses.fields(AgentDefinition)
                     if f.compare and f.name != "line" and getattr(self.old, f.name) != getattr(self.new, f.name))

    @property
    def needs_registration(self) -> bool:
        """The server must see a new worker: the name it dispatches by or the job type changed."""
        return (self.old.registered_name, self.old.job_type) != (self.new.registered_name, self.new.job_type)

    @property
    def needs_new_processes(self) -> bool:
        """Prewarmed processes no longer match: code, the functions they loaded, or their env changed."""
        return self.code_changed or prewarm_inputs(self.old) != prewarm_inputs(self.new)


@dataclass(frozen=True)
class Plan:
    added: tuple[AgentDefinition, ...]
    removed: tuple[AgentDefinition, ...]
    changes: tuple[Change, ...]  # every agent kept, changed or not

    @property
    def changed(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.definition_changed or c.code_changed)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def summary(self) -> str:
        """One line: what is added, changed and removed."""
        parts = []
        if self.added:
            parts.append("added " + ", ".join(a.key for a in self.added))
        if self.changed:
            parts.append("changed " + ", ".join(
                f"{c.key} ({', '.join(c.changed_keys + (('code',) if c.code_changed else ()))})"
                for c in self.changed))
        if self.removed:
            parts.append("removed " + ", ".join(a.key for a in self.removed))
        return "; ".join(parts) or "no changes"


def prewarm_inputs(d: AgentDefinition) -> tuple[object, ...]:
    """What a prewarmed process was built from; other fields reach it with each job."""
    return (d.entrypoint, d.setup, d.env, d.inherit_env, d.api, d.processes.init_timeout)


def _comparable(d: AgentDefinition) -> AgentDefinition:
    return dataclasses.replace(d, line=0)


def plan(current: Mapping[str, AgentDefinition], loaded: Sequence[AgentDefinition],
         code_changed: Collection[str] = ()) -> Plan:
    """Compare the served agents with a freshly loaded, valid catalog. Disabled agents count as absent."""
    new = {d.key: d for d in loaded if d.enabled}
    added = tuple(d for key, d in new.items() if key not in current)
    removed = tuple(d for key, d in current.items() if key not in new)
    changes = tuple(
        Change(old, new[key], _comparable(old) != _comparable(new[key]), key in code_changed)
        for key, old in current.items() if key in new)
    return Plan(added, removed, changes)
