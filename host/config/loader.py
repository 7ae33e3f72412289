"""Drop-in directories -> validated, frozen agent definitions.

This is the one way files become definitions: `validate`, `run` and reload all call
`load`. Every problem is collected as a value; one broken file never hides another.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from host.config.definitions import AgentDefinition, build, semantic_problems
from host.config.discovery import DEFAULT_PATH, discover
from host.config.import_check import CheckRequest, check_functions
from host.config.metadata import load_policy
from host.config.schema import check_document, typed_substitutions
from host.config.sources import Snapshot
from host.config.yamlsource import display_path, format_path, load_file
from host.errors import ConfigError, Problem


@dataclass(frozen=True)
class Catalog:
    """Everything loaded from a set of paths: the definitions and every problem found."""

    agents: tuple[AgentDefinition, ...]
    problems: tuple[Problem, ...]
    files: tuple[str, ...]
    # agent name -> the project source files importing its functions loaded (when imports were checked)
    sources: Mapping[str, Snapshot] = field(default_factory=dict, compare=False)
    warnings: tuple[Problem, ...] = ()  # worth saying, but the configuration is valid
    notes: tuple[Problem, ...] = ()  # what was not checked (unset variables under `validate --no-env`)

    @property
    def ok(self) -> bool:
        return not self.problems

    def by_name(self) -> dict[str, AgentDefinition]:
        return {a.name: a for a in self.agents}

    def require_ok(self) -> Catalog:
        if self.problems:
            raise ConfigError(self.problems)
        return self


def load(
    paths: Sequence[str] = (DEFAULT_PATH,),
    *,
    env: Mapping[str, str] | None = None,
    check_imports: bool = True,
    import_timeout: float = 10.0,
    strict: bool = False,
    unset_env_notes: bool = False,
) -> Catalog:
    """Load and validate every agent under `paths`. `strict` makes warnings errors; `unset_env_notes` reads an
    unset `${VAR}` as empty and notes it, for checking files in a CI without their secrets."""
    env = os.environ if env is None else env
    notes: list[Problem] | None = [] if unset_env_notes else None
    files, problems = discover(paths)
    agents: list[AgentDefinition] = []
    # (name, version) -> where; also for documents with other errors
    first_seen: dict[tuple[str, str | None], tuple[str, int]] = {}
    for file in files:
        shown = display_path(file)
        base_dir = os.path.dirname(os.path.abspath(file))
        docs, file_problems = load_file(file, shown, env, notes)
        problems.extend(file_problems)
        if not docs and not file_problems:
            # never "no agents here": a file caught mid-write (truncated, not yet written) must not remove them
            problems.append(Problem(shown, 0, 0, "$", "the file is empty: it defines no agent (delete the file, "
                                                      "or set enabled: false, to remove an agent)"))
        for doc in docs:
            typed_substitutions(doc)
            doc_problems = check_document(doc) + semantic_problems(doc)
            if notes is not None and doc.unset:  # a value from an unset variable is not checked, only noted
                unset = {format_path(p) for p in doc.unset}
                doc_problems = [p for p in doc_problems if p.path not in unset]
            name = doc.value.get("name") if isinstance(doc.value, dict) else None
            version = doc.value.get("version") if isinstance(doc.value, dict) else None
            if isinstance(name, str):
                mine = version if isinstance(version, str) else None
                seen = [(v, where) for (n, v), where in first_seen.items() if n == name]
                same = [where for v, where in seen if v == mine]
                message = None
                if mine is not None and same:
                    message = f"version {mine!r} of agent {name!r} is already defined at {same[0][0]}:{same[0][1]}"
                elif seen and (mine is None or any(v is None for v, _ in seen)):
                    message = (f"agent {name!r} is already defined at {seen[0][1][0]}:{seen[0][1][1]} (to serve "
                               "both as versions of one agent, give each a distinct `version:`)")
                if message is not None:
                    doc_problems.append(doc.problem(("name",), message))
                else:
                    first_seen[(name, mine)] = (doc.file, doc.line)
            if doc_problems:
                problems.extend(doc_problems)
                continue
            policy, meta_problems = load_policy(doc, base_dir)
            if meta_problems:
                problems.extend(meta_problems)
                continue
            agents.append(build(doc, base_dir, policy))
    problems.extend(_automatic_conflicts(agents))
    problems.extend(version_problems(agents))
    sources: dict[str, Snapshot] = {}
    warnings: list[Problem] = []
    if check_imports and agents:
        checked = import_problems(agents, import_timeout)
        problems.extend(checked.problems)
        sources, warnings = checked.sources, checked.warnings
    if strict:
        problems.extend(warnings)
        warnings = []
    return Catalog(tuple(agents), tuple(sorted(problems)), tuple(display_path(f) for f in files), sources,
                   tuple(sorted(warnings)), tuple(notes or ()))


def _automatic_conflicts(agents: Sequence[AgentDefinition]) -> list[Problem]:
    """Automatic agents register the same (empty) agent name with LiveKit: two of one job type would share
    the rooms between them, each room getting only one. That is an error, naming both files."""
    first: dict[str, AgentDefinition] = {}
    problems = []
    for agent in agents:
        if agent.dispatch != "automatic" or not agent.enabled:
            continue
        other = first.setdefault(agent.job_type, agent)
        if other is not agent and other.name != agent.name:  # versions of one agent register once
            line, col = agent.location("dispatch")
            problems.append(Problem(
                agent.file, line, col, "$.dispatch",
                f"agent {agent.name!r} and agent {other.name!r} ({other.file}:{other.line}) are both dispatch: "
                f"automatic with job_type {agent.job_type}: LiveKit gives each room to only one of them. Serve "
                "both from one entrypoint, or dispatch one of them explicitly"))
    return problems


SHARED_BY_VERSIONS = ("dispatch", "job_type", "route_by")  # one registration, one way to pick a version


def version_problems(agents: Sequence[AgentDefinition]) -> list[Problem]:
    """The versions of each name, as a set: they agree on what their one registration and their choice need,
    and some weight is above 0."""
    problems = []
    by_name: dict[str, list[AgentDefinition]] = {}
    for agent in agents:
        stated = {k for k, _, _ in agent.locations}
        if agent.version is None:  # the keys of versions, on an agent that has none, would be silently ignored
            for key in sorted(stated & {"weight", "route_by", "take_out"}):
                line, col = agent.location(key)
                problems.append(Problem(agent.file, line, col, f"$.{key}", f"{key} is for versions of an agent: add "
                                        "`version:` (or remove it)"))
        elif agent.take_out.failures > agent.take_out.of_last:
            line, col = agent.location("take_out")
            problems.append(Problem(agent.file, line, col, "$.take_out",
                                    f"take_out.failures {agent.take_out.failures} is more than its of_last "
                                    f"{agent.take_out.of_last}: the version could never be taken out"))
        if agent.version is not None and agent.enabled:
            by_name.setdefault(agent.name, []).append(agent)
    for name, versions in by_name.items():
        first = versions[0]
        for other in versions[1:]:
            for key in SHARED_BY_VERSIONS:
                mine, theirs = getattr(other, key), getattr(first, key)
                if mine != theirs:
                    line, col = other.location(key)
                    problems.append(Problem(
                        other.file, line, col, f"$.{key}",
                        f"version {other.version!r} of agent {name!r} says {key}: {mine}, version {first.version!r} "
                        f"({first.file}:{first.line}) says {theirs}: the versions of one agent register once and "
                        "must agree on it"))
        if all(v.weight == 0 for v in versions):
            line, col = first.location("weight")
            problems.append(Problem(first.file, line, col, "$.weight",
                                    f"every version of agent {name!r} has weight 0: no new job could be given "
                                    "one (give one version a weight above 0, or disable the agent)"))
    return problems


@dataclass(frozen=True)
class ImportCheck:
    problems: list[Problem]
    sources: dict[str, Snapshot]  # agent name -> the project files its imports loaded
    warnings: list[Problem]


def import_problems(agents: Sequence[AgentDefinition], timeout: float) -> ImportCheck:
    """Problems with each agent's entrypoint and setup, resolved in a child process, and the
    project source files each agent's imports loaded."""
    requests: list[CheckRequest] = []
    owners: list[tuple[AgentDefinition, str]] = []
    for agent in agents:
        for role in ("entrypoint", "setup"):
            ref = getattr(agent, role)
            if ref is not None:
                requests.append(CheckRequest(ref, role, agent.api, declared(agent) if role == "entrypoint" else None))
                owners.append((agent, role))
    problems: list[Problem] = []
    warnings: list[Problem] = []
    sources: dict[str, dict[str, tuple[int, int]]] = {}
    for (agent, role), result in zip(owners, check_functions(requests, timeout), strict=True):
        sources.setdefault(agent.key, {}).update(result.sources)
        line, col = agent.location(role)
        if result.error is not None:
            problems.append(Problem(agent.file, line, col, f"$.{role}",
                                    f"{getattr(agent, role).text}: {result.error}"))
        for severity, key, message in result.differences:
            top = key.partition(".")[0]
            kline, kcol = agent.location(top) if any(k == top for k, _, _ in agent.locations) else (line, col)
            (problems if severity == "error" else warnings).append(Problem(agent.file, kline, kcol, f"$.{key}",
                                                                           message))
    return ImportCheck(problems, dict(sources), warnings)


def declared(agent: AgentDefinition) -> dict[str, object]:
    """What the agent file says that a livekit-agents server could say otherwise (JSON for the checking child)."""
    return {"name": agent.name, "entrypoint": agent.entrypoint.text,
            "setup": agent.setup.text if agent.setup is not None else None, "dispatch": agent.dispatch,
            "job_type": agent.job_type,
            "stated": sorted(k for k, _, _ in agent.locations), "idle": agent.processes.idle,
            "init_timeout": agent.processes.init_timeout, "shutdown_timeout": agent.shutdown.timeout,
            "memory_warn_mb": agent.limits.memory_warn_mb, "memory_limit_mb": agent.limits.memory_limit_mb}
