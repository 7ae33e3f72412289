"""How a job ended, as a value: decided from the facts of its process's exit, in one pure function."""

from __future__ import annotations

from dataclasses import dataclass

from host.process.exits import ProcessExit


@dataclass(frozen=True)
class Failure:
    """A failure the host decided on while the job ran (e.g. its memory limit), before its process exited."""

    reason: str  # metrics label
    message: str


@dataclass(frozen=True)
class Outcome:
    reason: str | None  # the failure's metrics label; None when the job succeeded
    error: str | None  # what is reported to the server and logged; None when the job succeeded

    @property
    def ok(self) -> bool:
        return self.error is None


SUCCESS = Outcome(None, None)


def outcome(end: ProcessExit, failure: Failure | None, timeout: float) -> Outcome:
    """The outcome of a job whose process has exited after a shutdown bounded by `timeout` seconds."""
    killed = f"shutdown did not finish within {timeout:g}s; process killed"
    # a process killed at the timeout after it said its job was over (JobDone) was only sending its last spans
    # (to a collector that does not answer, say): its job is judged by what it said
    timed_out = end.killed_by_host and not end.kill_reason and end.result is None
    if failure is not None:
        return Outcome(failure.reason, failure.message + ("; " + killed if timed_out else ""))
    if end.killed_by_host and end.kill_reason:
        return Outcome("host_stopped", end.kill_reason)
    if timed_out:
        return Outcome("shutdown_timeout", killed)
    if end.result is None and end.memory_killed:
        return Outcome("memory_limit", f"job process {end.memory_killed}")
    if end.result is None:
        return Outcome("process_exited", f"job process exited with code {end.code} before the job ended")
    if end.result.error is not None:
        return Outcome("job_error", end.result.error)
    return SUCCESS
