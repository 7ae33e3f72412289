"""Validated, frozen agent definitions: what the rest of agenthost works from.

A definition is built only from a document that passed the JSON Schema, so the
builders here can index without checking types. Everything is picklable: a
definition crosses into each job process.
"""

from __future__ import annotations

import math
import os
import re
import string
from dataclasses import dataclass, field
from typing import Any

from host.config.yamlsource import Document
from host.errors import Problem

TEMPLATE_FIELDS = frozenset({"job_id", "agent", "room"})
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(ms|s|m)$")


def parse_duration(value: float | int | str) -> float:
    """Seconds from a number of seconds or a string with `ms`, `s` or `m`."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{value!r} is not a duration")
        return float(value)
    m = _DURATION.match(value.strip())
    if not m:
        raise ValueError(f"{value!r} is not a duration")
    number, unit = float(m.group(1)), m.group(2)
    return number / 1000 if unit == "ms" else number * 60 if unit == "m" else number


def template_problem(template: str) -> str | None:
    """Why a participant template is invalid, or None."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        return f"{template!r} is not a valid template: {exc}"
    for f in fields:
        if f not in TEMPLATE_FIELDS:
            return f"unknown template field {{{f}}} in {template!r} (known: {{job_id}}, {{agent}}, {{room}})"
    return None


def render_template(template: str, *, job_id: str, agent: str, room: str) -> str:
    return template.format(job_id=job_id, agent=agent, room=room)


@dataclass(frozen=True)
class FunctionRef:
    """`module:function`, or a file path (made absolute against the agent file) and function."""

    text: str
    module: str | None
    file: str | None
    function: str
    base_dir: str | None = None  # the agent file's folder, which a relative path is read from

    @classmethod
    def parse(cls, text: str, base_dir: str) -> FunctionRef:
        target, _, function = text.rpartition(":")
        if target.endswith(".py"):
            path = target if os.path.isabs(target) else os.path.normpath(os.path.join(base_dir, target))
            return cls(text, None, path, function, base_dir)
        return cls(text, target, None, function, base_dir)


@dataclass(frozen=True)
class MetadataPolicy:
    schema: dict[str, Any] | None  # resolved JSON Schema (inline or loaded from file), if any
    schema_file: str | None  # where a file schema came from; local $refs resolve against it
    required: bool
    roots: tuple[str, ...] = ()  # the folders its schema files and $refs may be read from


@dataclass(frozen=True)
class ParticipantTemplate:
    identity: str
    name: str
    metadata: str
    attributes: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ShutdownPolicy:
    when: str
    drain: bool
    timeout: float
    delete_room: bool


@dataclass(frozen=True)
class Limits:
    max_jobs: int
    memory_warn_mb: int
    memory_limit_mb: int
    pids_limit: int = 1024
    cpu_limit: float = 0.0  # CPUs


@dataclass(frozen=True)
class Processes:
    idle: int
    init_timeout: float


@dataclass(frozen=True)
class Recovery:
    on_host_loss: str = "redispatch"  # or "off": a call whose host died is left without an agent
    on_crash: str = "off"  # or "redispatch": a call whose job process died gets its agent again
    crash_backoff: float = 1.0  # seconds before a crashed job's call is dispatched again, doubled per attempt
    max_attempts: int = 3  # times one call is given its agent again at most (host losses, crashes, version retries)


@dataclass(frozen=True)
class TakeOut:
    failures: int = 3  # failed jobs among...
    of_last: int = 10  # ...a version's last this many take it out of rotation


@dataclass(frozen=True)
class AgentDefinition:
    name: str
    file: str
    line: int
    enabled: bool
    entrypoint: FunctionRef
    setup: FunctionRef | None
    dispatch: str
    job_type: str
    auto_subscribe: str
    metadata: MetadataPolicy
    participant: ParticipantTemplate
    shutdown: ShutdownPolicy
    limits: Limits
    processes: Processes
    env: tuple[tuple[str, str], ...] = field(default=())
    log_fields: tuple[tuple[str, Any], ...] = field(default=())
    api: str = "host"  # "host" | "livekit-agents": what the entrypoint is written against
    inherit_env: tuple[str, ...] | None = None  # None: all of the host's environment (but its LiveKit secret)
    recovery: Recovery = field(default_factory=Recovery)
    version: str | None = None  # one of several definitions of this name, picked per job by weight
    weight: int = 1
    route_by: str | None = None  # the metadata field whose value picks the version (else the room)
    take_out: TakeOut = field(default_factory=TakeOut)
    # (top-level key, line, column) of each value in the file, for messages found after loading
    locations: tuple[tuple[str, int, int], ...] = field(default=(), compare=False)

    def location(self, key: str) -> tuple[int, int]:
        for k, line, col in self.locations:
            if k == key:
                return line, col
        return self.line, 1

    @property
    def key(self) -> str:
        """What the host serves it as: its name, or `name@version` for one version of several."""
        return self.name if self.version is None else f"{self.name}@{self.version}"

    @property
    def registered_name(self) -> str:
        """The agent_name sent to LiveKit: empty for automatic dispatch."""
        return "" if self.dispatch == "automatic" else self.name


MAX_DURATION = 86400.0  # a day: the schema's bound on numbers, applied to strings such as '99999m' too
DURATIONS = (("shutdown", "timeout"), ("processes", "init_timeout"))


def semantic_problems(doc: Document) -> list[Problem]:
    """Checks the JSON Schema cannot express: template fields, finite durations. Tolerates schema-invalid
    documents."""
    v = doc.value if isinstance(doc.value, dict) else {}
    problems: list[Problem] = []
    for section, key in DURATIONS:
        raw = v.get(section, {}).get(key) if isinstance(v.get(section), dict) else None
        if isinstance(raw, float) and math.isnan(raw):  # the schema bounds numbers, but NaN compares false
            problems.append(doc.problem((section, key), f"{raw!r} is not a duration: it must be finite "
                                                        "(seconds from 0 to 86400, or a string such as 10s)"))
        elif isinstance(raw, str):
            try:
                if parse_duration(raw) > MAX_DURATION:
                    problems.append(doc.problem((section, key), f"{raw!r} is longer than a day (86400s)"))
            except ValueError:
                pass  # the schema says what is wrong with it
    participant = v.get("participant")
    for key in ("identity", "name"):
        raw = participant.get(key) if isinstance(participant, dict) else None
        if isinstance(raw, str) and (msg := template_problem(raw)):
            problems.append(doc.problem(("participant", key), msg))
    return problems


def build(doc: Document, base_dir: str, metadata: MetadataPolicy) -> AgentDefinition:
    """The definition of a document that passed the schema and `semantic_problems`."""
    v = doc.value
    name: str = v["name"]
    part = v.get("participant", {})
    shut = v.get("shutdown", {})
    lim = v.get("limits", {})
    proc = v.get("processes", {})
    rec = v.get("recovery", {})
    return AgentDefinition(
        name=name,
        file=doc.file,
        line=doc.line,
        enabled=v.get("enabled", True),
        entrypoint=FunctionRef.parse(v["entrypoint"], base_dir),
        setup=FunctionRef.parse(v["setup"], base_dir) if "setup" in v else None,
        dispatch=v.get("dispatch", "explicit"),
        job_type=v.get("job_type", "room"),
        auto_subscribe=v.get("auto_subscribe", "subscribe_all"),
        metadata=metadata,
        participant=ParticipantTemplate(
            identity=part.get("identity", "agent-{job_id}"),
            name=part.get("name", name),
            metadata=part.get("metadata", ""),
            attributes=tuple(sorted(part.get("attributes", {}).items())),
        ),
        shutdown=ShutdownPolicy(
            when=shut.get("when", "participants_left"),
            drain=shut.get("drain", True),
            timeout=parse_duration(shut.get("timeout", "10s")),
            delete_room=shut.get("delete_room", False),
        ),
        limits=Limits(
            max_jobs=lim.get("max_jobs", 0),
            memory_warn_mb=lim.get("memory_warn_mb", 1000),
            memory_limit_mb=lim.get("memory_limit_mb", 0),
            pids_limit=lim.get("pids_limit", 1024),
            cpu_limit=float(lim.get("cpu_limit", 0)),
        ),
        processes=Processes(
            idle=proc.get("idle", 1),
            init_timeout=parse_duration(proc.get("init_timeout", "10s")),
        ),
        recovery=Recovery(on_host_loss=rec.get("on_host_loss", "redispatch"), on_crash=rec.get("on_crash", "off"),
                          crash_backoff=parse_duration(rec.get("crash_backoff", "1s")),
                          max_attempts=rec.get("max_attempts", 3)),
        version=v.get("version"),
        weight=v.get("weight", 1),
        route_by=v.get("route_by"),
        take_out=TakeOut(v.get("take_out", {}).get("failures", 3), v.get("take_out", {}).get("of_last", 10)),
        env=tuple(sorted(v.get("env", {}).items())),
        log_fields=tuple(sorted(v.get("log_fields", {}).items())),
        api=v.get("api", "host"),
        inherit_env=None if v.get("inherit_env", "all") == "all" else tuple(v["inherit_env"]),
        locations=tuple((k, *doc.where((k,))) for k in v),
    )
