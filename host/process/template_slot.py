"""An agent's one template process, as its pool uses it: started once however many starts wait for it, started
again after it exited, given up for good when the agent's code cannot be forked safely (its processes then start
from the fork server), retired when the pool closes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from host.config.definitions import AgentDefinition
from host.config.sources import Snapshot
from host.process.cgroups import Confinement
from host.process.errors import NotForkSafeError, ProcessStartError
from host.process.template import AgentTemplate

logger = logging.getLogger("agenthost.pool")


class TemplateSlot:
    def __init__(self, definition: AgentDefinition, log_format: str, log_level: int,
                 confinement: Confinement | None, imported: Callable[[Snapshot], None]) -> None:
        self.definition = definition
        self._settings = (log_format, log_level, confinement)
        self._imported = imported  # told the project files a new template imported
        self.current: AgentTemplate | None = None
        self._starting: asyncio.Task[AgentTemplate | None] | None = None
        self._fork_safe = True  # False once a template said it cannot fork safely (see host.job.template_main)

    @property
    def pid(self) -> int | None:
        template = self.current
        return template.pid if template is not None and not template.exited else None

    async def for_start(self, closed: bool) -> AgentTemplate | None:
        """The running template, started first if need be (once, however many processes wait for it); None
        when this agent's processes start from the fork server, or the pool is `closed`. Its failure is raised as
        ProcessStartError."""
        if not self._fork_safe:
            return None
        template = self.current
        if template is not None and not template.exited and not template.retired:
            return template
        if closed:  # taken after a reload closed the pool (its offer was accepted just before): no new template
            return None
        if self._starting is None or self._starting.done():
            self._starting = asyncio.get_running_loop().create_task(self._start())
        starting = self._starting
        try:
            return await asyncio.shield(starting)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if starting.cancelled() and not (current and current.cancelling()):
                return None  # the pool closed while its template started: this process comes from the fork server
            raise

    async def _start(self) -> AgentTemplate | None:
        log_format, log_level, confinement = self._settings
        try:
            template = AgentTemplate(self.definition, log_format, log_level, confinement)
            await template.start(self.definition.processes.init_timeout)
        except NotForkSafeError as exc:
            self._fork_safe = False
            logger.warning("job processes of %s start without a template (each imports its code): %s",
                           self.definition.name, exc, extra={"agent": self.definition.name})
            return None
        except OSError as exc:
            raise ProcessStartError(f"cannot start a job process: its template: {exc}") from exc
        self._imported(template.sources)
        self.current = template
        logger.debug("template process %s of %s ready", template.pid, self.definition.name,
                     extra={"agent": self.definition.name, "pid": template.pid})
        return template

    async def stop_starting(self) -> None:
        """A template being started is given up (the pool closes)."""
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._starting

    async def retire(self) -> None:
        """The template forks nothing more and exits once the jobs it forked have ended."""
        template = self.current
        if template is not None:
            template.retire()
            if not template.serving:
                await template.wait_exit(5.0)
