"""Reload: load the agent paths again, validate, diff against what is served, apply only a valid result.

A `Reloader` is handed the agents it reloads as a `Served` (an `AgentSet`); on any problem it keeps
everything as it is and logs one line with every problem, as `validate` prints them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from host.config.definitions import AgentDefinition
from host.config.loader import import_problems, load
from host.config.report import problem_line
from host.config.sources import Snapshot, changed
from host.config.yamlsource import display_path
from host.ops.metrics import Metrics
from host.reload.plan import Plan, plan
from host.reload.watch import folders

logger = logging.getLogger("agenthost.host")


class Served(Protocol):
    def definitions(self) -> dict[str, AgentDefinition]: ...

    def sources(self) -> dict[str, Snapshot]:
        """Each agent's project source files, as its processes last imported them."""
        ...

    def apply(self, change: Plan, sources: Mapping[str, Snapshot]) -> None: ...


class Reloader:
    def __init__(self, paths: Sequence[str], served: Served, metrics: Metrics, *, import_timeout: float,
                 refused_while: Callable[[], str | None] = lambda: None,
                 applied: Callable[[], None] = lambda: None) -> None:
        self.paths = tuple(paths)
        self._served = served
        self._metrics = metrics
        self._import_timeout = import_timeout
        self._refused_while = refused_while  # why no reload may happen now (a drain), or None
        self._applied = applied  # told of each reload applied (versions taken out come back)
        self._lock = asyncio.Lock()

    def watched_folders(self) -> frozenset[str]:
        """The agent paths and the folders of every project file the agents are made of."""
        files: list[str] = list(self.paths)
        for files_of_agent in self._served.sources().values():
            files.extend(files_of_agent)
        for d in self._served.definitions().values():
            files.extend(ref.file for ref in (d.entrypoint, d.setup) if ref is not None and ref.file)
            if d.metadata.schema_file:
                files.append(d.metadata.schema_file)
        return folders(files)

    async def on_files_changed(self, paths: list[str]) -> None:
        shown = ", ".join(display_path(p) for p in paths[:3])
        more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
        await self.reload(f"changed {shown}{more}")

    async def reload(self, trigger: str) -> bool:
        """Load the agent paths again and apply the difference; on any problem keep everything as it is.

        Returns whether the new configuration is now served. Logs one line either way.
        """
        async with self._lock:
            why_not = self._refused_while()
            if why_not:
                logger.warning("reload (%s) ignored: %s", trigger, why_not)
                return False
            try:
                return await self._reload(trigger)
            except Exception as exc:  # a bug, not bad input (that is reported as problems): keep serving
                logger.exception("reload (%s) failed, still serving the previous configuration: %s", trigger, exc)
                self._metrics.reloads.labels("failed").inc()
                return False

    async def _reload(self, trigger: str) -> bool:
        started = time.monotonic()
        catalog = await asyncio.to_thread(load, self.paths, check_imports=False)
        problems = list(catalog.problems)
        code_changed = {name for name, files in self._served.sources().items() if changed(files)}
        change = plan(self._served.definitions(), catalog.agents, code_changed)
        sources: dict[str, Snapshot] = {}
        to_import = [*change.added, *(c.new for c in change.changes if c.needs_new_processes)]
        if not problems and to_import:
            checked = await asyncio.to_thread(import_problems, to_import, self._import_timeout)
            problems.extend(checked.problems)
            sources = checked.sources
        took = round((time.monotonic() - started) * 1000)
        if problems:
            self._metrics.reloads.labels("refused").inc()
            logger.error("reload (%s) refused, still serving the previous configuration: %s", trigger,
                         "; ".join(problem_line(p) for p in sorted(problems)),
                         extra={"reload": "refused", "reload_ms": took})
            return False
        self._served.apply(change, sources)
        self._applied()
        result = "unchanged" if change.empty else "applied"
        self._metrics.reloads.labels(result).inc()
        logger.info("reload (%s): %s", trigger, change.summary(), extra={"reload": result, "reload_ms": took})
        return True
