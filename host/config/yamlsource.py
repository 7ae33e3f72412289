"""Reading YAML (and JSON) text into plain values that remember where each came from.

PyYAML's composed nodes carry line and column, so every value gets a location keyed
by its JSON path. The reader is defensive: it bounds file size and the number of
nodes an alias may expand to, and turns every parse failure into a `Problem`.
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from host.errors import Problem

MAX_FILE_BYTES = 1 << 20
MAX_NODES = 100_000
MAX_SUBSTITUTED_BYTES = 1 << 20  # the text ${VAR} substitution may produce in one file, all values together

try:
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader

JsonPath = tuple[str | int, ...]


def format_path(path: JsonPath) -> str:
    """`('shutdown', 'timeout')` -> `$.shutdown.timeout`; `('a', 0)` -> `$.a[0]`."""
    out = "$"
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            out += f".{part}"
        else:
            out += "[" + repr(part) + "]"
    return out


@dataclass
class Document:
    """One parsed YAML document and the location of each value and mapping key in it."""

    file: str
    value: Any
    line: int
    column: int
    positions: dict[JsonPath, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[JsonPath, tuple[int, int]] = field(default_factory=dict)
    # path -> (the text as written, the value after ${VAR} substitution): a value from the environment may
    # be a secret, so messages show what was written instead
    substituted: dict[JsonPath, tuple[str, str]] = field(default_factory=dict)
    unset: set[JsonPath] = field(default_factory=set)  # values read with an unset ${VAR} (validate --no-env)

    def where(self, path: JsonPath, *, key: bool = False) -> tuple[int, int]:
        """Location of `path`, or of its nearest located ancestor."""
        if key and path in self.key_positions:
            return self.key_positions[path]
        p = path
        while p:
            if p in self.positions:
                return self.positions[p]
            p = p[:-1]
        return self.positions.get((), (self.line, self.column))

    def problem(self, path: JsonPath, message: str, *, key: bool = False) -> Problem:
        line, col = self.where(path, key=key)
        return Problem(self.file, line, col, format_path(path), self.hide_substituted(message))

    def hide_substituted(self, message: str) -> str:
        """`message` with every value that came from the environment replaced by the text that named it."""
        for written, value in self.substituted.values():
            if len(value) >= 3 and value != written:
                # once: the text written holds the value's default, which a second pass would replace again;
                # and only where it stands alone (640 is no part of 86400)
                message = message.replace(repr(value), repr(written)) if repr(value) in message else \
                    re.sub(rf"(?<![\w.]){re.escape(value)}(?![\w.])", written.replace("\\", "\\\\"), message)
        return message


class _TooBig(Exception):
    pass


class _SubstitutedTooMuch(Exception):
    pass


# ${VAR}, ${VAR:-default} (the default when VAR is unset or empty, as in the shell and docker-compose),
# ${VAR-default} (the default only when VAR is unset), ${VAR:?message} and ${VAR?message} (VAR required: the
# message is the error), and $$ for a literal $
_VAR = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\})")


class _Converter:
    def __init__(self, file: str, env: Mapping[str, str] | None, notes: list[Problem] | None = None) -> None:
        self.file = file
        self.env = env
        self.notes = notes  # where unset variables go when they are not errors (validate --no-env)
        self.count = 0
        self.problems: list[Problem] = []
        self.doc: Document | None = None
        self._scalar_loader = _Loader("")
        # a scalar node's value after substitution, by node: an alias is the same node, substituted once
        self._substituted: dict[int, tuple[str, str]] = {}
        self._substituted_bytes = 0

    def document(self, node: yaml.Node) -> Document:
        line, col = node.start_mark.line + 1, node.start_mark.column + 1
        self.doc = Document(self.file, None, line, col)
        self.doc.value = self.convert(node, ())
        return self.doc

    def convert(self, node: yaml.Node, path: JsonPath) -> Any:
        assert self.doc is not None
        self.count += 1
        if self.count > MAX_NODES:
            raise _TooBig
        self.doc.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = self._scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
                kline, kcol = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                if key_node.tag == "tag:yaml.org,2002:merge":
                    self.problems.append(Problem(self.file, kline, kcol, format_path(path),
                                                 "merge keys ('<<') are not supported"))
                    continue
                if not isinstance(key, (str, int, float, bool)) or key is None:
                    self.problems.append(Problem(self.file, kline, kcol, format_path(path),
                                                 "mapping keys must be plain strings"))
                    continue
                skey = key if isinstance(key, str) else str(key).lower() if isinstance(key, bool) else str(key)
                child = (*path, skey)
                if skey in out:
                    self.problems.append(Problem(self.file, kline, kcol, format_path(child),
                                                 f"duplicate key {skey!r}"))
                    continue
                self.doc.key_positions[child] = (kline, kcol)
                out[skey] = self.convert(value_node, child)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
        value = self._scalar(node)
        if isinstance(value, str) and self.env is not None and "$" in value:
            if id(node) in self._substituted:  # an alias: the same value, at this path too
                written, value = self._substituted[id(node)]
            else:
                written, value = value, self._substitute(value, node, path)
                self._substituted_bytes += len(value)
                if self._substituted_bytes > MAX_SUBSTITUTED_BYTES:
                    raise _SubstitutedTooMuch
                self._substituted[id(node)] = (written, value)
            self.doc.substituted[path] = (written, value)
        return value

    def _scalar(self, node: yaml.Node) -> Any:
        value = self._scalar_loader.construct_object(node, deep=True)
        if isinstance(value, (datetime.date, datetime.datetime)):
            return node.value  # keep timestamps as the text the user wrote
        if isinstance(value, bytes):
            return node.value
        return value

    def _substitute(self, text: str, node: yaml.Node, path: JsonPath) -> str:
        assert self.env is not None
        env = self.env

        def repl(m: re.Match[str]) -> str:
            if m.group(0) == "$$":
                return "$"
            name, form, default = m.group(1), m.group(2), m.group(3)
            value = env.get(name)
            if value is not None and not (value == "" and form in (":-", ":?")):
                return value
            if default is not None and form in ("-", ":-"):
                return default
            where = (self.file, node.start_mark.line + 1, node.start_mark.column + 1, format_path(path))
            # required (`?`), with the file's own words; else it has no default
            said = (f": {default}" if default else "") if form in ("?", ":?") else ""
            if self.notes is not None:
                assert self.doc is not None
                self.doc.unset.add(path)
                self.notes.append(Problem(*where, f"environment variable {name} is not set{said} (not checked)"))
            else:
                why = said if form in ("?", ":?") else " and has no default"
                self.problems.append(Problem(*where, f"environment variable {name} is not set{why}"))
            return ""

        return _VAR.sub(repl, text)


def read_text(file: str, data: bytes) -> tuple[str | None, list[Problem]]:
    """Decode file content, refusing what is clearly not a YAML text file."""
    if len(data) > MAX_FILE_BYTES:
        return None, [Problem(file, 0, 0, "$", f"file is too large ({len(data)} bytes; limit {MAX_FILE_BYTES})")]
    if b"\x00" in data:
        return None, [Problem(file, 0, 0, "$", "file is binary, not YAML text")]
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        return None, [Problem(file, 0, 0, "$", f"file is not UTF-8 text ({exc.reason} at byte {exc.start})")]


def parse_documents(
    file: str, text: str, env: Mapping[str, str] | None = None, notes: list[Problem] | None = None
) -> tuple[list[Document], list[Problem]]:
    """Parse every YAML document in `text`. `env` enables `${VAR}` substitution in strings; with `notes`, an
    unset variable is noted there and read as empty instead of being a problem."""
    conv = _Converter(file, env, notes)
    docs: list[Document] = []
    try:
        for node in yaml.compose_all(text, Loader=_Loader):
            if node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")
                                and node.value == ""):
                continue  # an empty document between two '---'
            docs.append(conv.document(node))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        msg = ": ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        return docs, [*conv.problems, Problem(file, line, col, "$", f"YAML syntax error: {msg}")]
    except yaml.YAMLError as exc:
        return docs, [*conv.problems, Problem(file, 0, 0, "$", f"YAML error: {exc}")]
    except _TooBig:
        return docs, [*conv.problems, Problem(file, 0, 0, "$",
                      f"document expands to more than {MAX_NODES} values (too large, or an alias bomb)")]
    except _SubstitutedTooMuch:
        return docs, [*conv.problems, Problem(file, 0, 0, "$", "${VAR} substitution makes more than "
                                              f"{MAX_SUBSTITUTED_BYTES} bytes of text in this file")]
    except RecursionError:
        return docs, [*conv.problems, Problem(file, 0, 0, "$", "document is nested too deeply")]
    return docs, conv.problems


def load_file(path: str, display: str | None = None, env: Mapping[str, str] | None = None,
              notes: list[Problem] | None = None) -> tuple[list[Document], list[Problem]]:
    """Read and parse one file; `display` is the name used in problems."""
    shown = display or path
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return [], [Problem(shown, 0, 0, "$", f"cannot read file: {exc.strerror or exc}")]
    text, problems = read_text(shown, data)
    if text is None:
        return [], problems
    return parse_documents(shown, text, env, notes)


def display_path(path: str) -> str:
    """A path as the user would want to see it: relative to the working directory when below it."""
    absolute = os.path.abspath(path)
    try:
        rel = os.path.relpath(absolute)
    except ValueError:
        return absolute
    return absolute if rel.startswith("..") else rel
