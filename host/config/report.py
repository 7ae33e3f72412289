"""Rendering problems for people (text), programs (json) and GitHub Actions (github)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from host.config.definitions import AgentDefinition
from host.errors import Problem

FORMATS = ("text", "json", "github")


def _github_escape(text: str, *, prop: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


def problem_line(p: Problem) -> str:
    return f"{p.file}:{p.line}:{p.column}: {p.path}: {p.message}"


def _annotation(level: str, p: Problem) -> str:
    props = f"file={_github_escape(p.file, prop=True)}"
    if p.line:
        props += f",line={p.line},col={max(p.column, 1)}"
    props += f",title={_github_escape(p.path, prop=True)}"
    return f"::{level} {props}::{_github_escape(p.path + ': ' + p.message)}"


def render(fmt: str, agents: Sequence[AgentDefinition], problems: Sequence[Problem],
           files: int | None = None, warnings: Sequence[Problem] = (), notes: Sequence[Problem] = ()) -> str:
    """The whole report, ending in a newline. Warnings and notes never make it fail."""
    if fmt == "json":
        body: dict[str, object] = {
            "status": "fail" if problems else "ok",
            "agents": [{"name": a.name, "file": a.file, "line": a.line} for a in agents],
            "errors": [p.as_dict() for p in problems],
        }
        if warnings:
            body["warnings"] = [w.as_dict() for w in warnings]
        if notes:
            body["notes"] = [n.as_dict() for n in notes]
        return json.dumps(body, indent=2) + "\n"
    if fmt == "github":
        lines = [_annotation("notice", n) for n in notes] + [_annotation("warning", w) for w in warnings]
        lines += [_annotation("error", p) for p in problems]
        return "".join(line + "\n" for line in lines)
    lines = [f"{n.file}:{n.line}:{n.column}: {n.path}: note: {n.message}" for n in notes]
    lines += [f"{w.file}:{w.line}:{w.column}: {w.path}: warning: {w.message}" for w in warnings]
    lines += [problem_line(p) for p in problems]
    if problems:
        lines.append(f"{len(problems)} error{'s' if len(problems) != 1 else ''}")
    else:
        n = len(agents)
        lines.append(f"ok: {n} agent{'s' if n != 1 else ''}"
                     + (f" in {files} file{'s' if files != 1 else ''}" if files is not None else ""))
    return "".join(line + "\n" for line in lines)
