"""Problems found in user input, and the typed exceptions raised below the CLI."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with an input, located as precisely as we can.

    `path` is a JSON path into the document (`$` for the document itself).
    Line and column are 1-based; 0 means "the whole file".
    """

    file: str
    line: int
    column: int
    path: str
    message: str

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "message": self.message,
        }


class AgentHostError(Exception):
    """Base of every error agenthost raises on purpose."""


class ConfigError(AgentHostError):
    """The configuration is invalid; carries every problem found."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(sorted(problems))
        first = self.problems[0] if self.problems else None
        summary = f"{first.file}:{first.line}:{first.column}: {first.message}" if first else "invalid"
        more = f" (+{len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(summary + more)


class UnknownAgentError(AgentHostError):
    """A command named an agent that no loaded file defines."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = tuple(sorted(known))
        super().__init__(f"no agent named {name!r} (known: {', '.join(self.known) or 'none'})")


class ServerError(AgentHostError):
    """The LiveKit server could not be reached or refused a request."""


class ListenError(AgentHostError):
    """The host cannot listen on the HTTP address it was given."""
