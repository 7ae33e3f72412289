"""Job metadata: loading each agent's metadata JSON Schema and checking payloads against it.

Only local files resolve as `$ref`s (relative to the schema that refers to them);
a URL is reported, never fetched. Checking a payload is what a job offer does
before it is accepted, so a `MetadataChecker` is cheap to reuse.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

import jsonschema_rs
from jsonschema import exceptions as js_exceptions
from jsonschema import validators
from referencing import Registry
from referencing.exceptions import CannotDetermineSpecification, Unresolvable

from host.config.definitions import MetadataPolicy
from host.config.schema import fast_valid
from host.config.schema_refs import inside, retriever, schema_roots, walk_refs, with_base
from host.config.untrusted import MAX_DEPTH, MAX_METADATA_BYTES, PatternTimeout, bounded, depth, excerpt, shorten
from host.config.yamlsource import Document, JsonPath, display_path, load_file, parse_documents
from host.errors import Problem

__all__ = ["MAX_DEPTH", "MAX_METADATA_BYTES", "MetadataChecker", "load_policy", "schema_roots"]

_UNUSABLE = (Unresolvable, CannotDetermineSpecification, js_exceptions.SchemaError)

# what the compiled validator is not trusted with: files (ours are confined), formats (its rules differ in
# places), patterns (ours are bounded in time and end-anchored): schemas using them take the detailed path
_NOT_COMPILED = frozenset({"$ref", "$dynamicRef", "format", "pattern", "patternProperties"})


def _uses(schema: Any, keywords: frozenset[str]) -> bool:
    if isinstance(schema, dict):
        return any(k in keywords or _uses(v, keywords) for k, v in schema.items())
    if isinstance(schema, list):
        return any(_uses(v, keywords) for v in schema)
    return False


class MetadataChecker:
    """Validates metadata payloads against one agent's policy. Build it once per definition."""

    def __init__(self, policy: MetadataPolicy) -> None:
        self.policy = policy
        self._validator: Any = None
        self._fast: Any = None  # a compiled validator for the common case: valid metadata
        if policy.schema is not None and not _uses(policy.schema, _NOT_COMPILED):
            with contextlib.suppress(Exception):  # a schema it cannot compile is checked by jsonschema alone
                self._fast = jsonschema_rs.validator_for(policy.schema)
        if policy.schema is not None:
            base = policy.schema_file or os.path.join(os.getcwd(), "inline.schema.json")
            schema = with_base(policy.schema, base)
            cls = bounded(validators.validator_for(schema))
            retrieve = retriever(policy.roots)
            self._validator = cls(schema, registry=Registry(retrieve=retrieve),  # type: ignore[call-arg]
                                  format_checker=cls.FORMAT_CHECKER)

    def check(self, payload: str, source: str = "<metadata>") -> tuple[Any, list[Problem]]:
        """The parsed metadata and every problem with it (empty when it may be accepted).

        Never raises, and is bounded: a payload over MAX_METADATA_BYTES or nested deeper than MAX_DEPTH is
        refused without further work, and a schema pattern gets REGEX_TIMEOUT per value."""
        def refused(message: str, line: int = 0, column: int = 0) -> tuple[Any, list[Problem]]:
            return None, [Problem(source, line, column, "$", message)]

        # a character is at least a byte: only a payload under the bound in characters needs encoding to count
        size = len(payload) if len(payload) > MAX_METADATA_BYTES else len(payload.encode("utf-8", "surrogatepass"))
        if size > MAX_METADATA_BYTES:
            return refused(f"metadata is over the limit of {MAX_METADATA_BYTES} bytes (UTF-8)")
        if not payload.strip():
            return refused("metadata is required but the job has none") if self.policy.required else (None, [])
        try:
            value = json.loads(payload)
        except json.JSONDecodeError as exc:
            if self._validator is None:
                return payload, []  # free-form metadata, no schema to hold it to
            return refused(f"metadata is not JSON: {exc.msg}", exc.lineno, exc.colno)
        except (ValueError, RecursionError) as exc:  # an integer of thousands of digits; absurd nesting
            message = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).split(";")[0]
            return (payload, []) if self._validator is None else refused(f"metadata is not usable JSON: {message}")
        if self._validator is None:
            return value, []
        if depth(value) > MAX_DEPTH:
            return refused(f"metadata nests arrays and objects deeper than {MAX_DEPTH} levels")
        if fast_valid(self._fast, value):
            return value, []
        try:
            errors = list(self._validator.iter_errors(value))
        except _UNUSABLE as exc:
            return refused(f"metadata schema cannot be used: {excerpt(str(exc), 200)}")
        except PatternTimeout as exc:
            return refused(f"metadata refused: {exc}")
        except (RecursionError, ValueError, TypeError) as exc:
            return refused(f"metadata could not be checked: {type(exc).__name__}: {excerpt(str(exc), 200)}")
        if not errors:
            return value, []
        docs, _ = parse_documents(source, payload)
        doc = docs[0] if docs else Document(source, value, 1, 1)
        return None, [doc.problem(tuple(e.absolute_path), shorten(e.message)) for e in errors]


@dataclass(frozen=True)
class _Located:
    """Where schema problems are reported: the schema file, or the agent file for inline schemas."""

    doc: Document
    prefix: JsonPath

    def problem(self, path: JsonPath, message: str) -> Problem:
        return self.doc.problem((*self.prefix, *path), message)


def load_policy(agent_doc: Document, base_dir: str) -> tuple[MetadataPolicy, list[Problem]]:
    """The metadata policy of a schema-valid agent document, with every problem of its schema."""
    section = agent_doc.value.get("metadata", {})
    required = bool(section.get("required", False))
    roots = schema_roots(base_dir)
    raw = section.get("schema")
    if raw is None:
        return MetadataPolicy(None, None, required), []
    if isinstance(raw, dict):
        located = _Located(agent_doc, ("metadata", "schema"))
        schema: dict[str, Any] = raw
        schema_file = None
        # beside the agent file (its real folder, whatever path it is shown by)
        base = os.path.join(base_dir, os.path.basename(agent_doc.file) + ".inline.json")
    else:
        path = raw if os.path.isabs(raw) else os.path.normpath(os.path.join(base_dir, raw))
        if not inside(path, roots):
            return MetadataPolicy(None, None, required), [agent_doc.problem(("metadata", "schema"), (
                f"metadata schema file {raw!r} is outside the agent file's folder and the working directory; "
                "only schema files inside them are read"))]
        if not os.path.isfile(path):
            return MetadataPolicy(None, None, required), [
                agent_doc.problem(("metadata", "schema"), f"metadata schema file {raw!r} does not exist")
            ]
        shown = display_path(path)
        docs, problems = load_file(path, shown)
        if problems:
            return MetadataPolicy(None, None, required), problems
        if len(docs) != 1 or not isinstance(docs[0].value, (dict, bool)):
            return MetadataPolicy(None, None, required), [
                Problem(shown, 1, 1, "$", "a metadata schema file must hold one JSON Schema object")
            ]
        located = _Located(docs[0], ())
        schema = docs[0].value if isinstance(docs[0].value, dict) else {}
        schema_file = path
        base = path
    problems = _schema_problems(schema, located, base, roots)
    policy = MetadataPolicy(schema, schema_file if schema_file else None, required, roots)
    if not problems and schema_file is None:
        # inline schemas resolve their local $refs against the agent file's folder
        policy = MetadataPolicy(with_base(schema, base), None, required, roots)
    return policy, problems


def _referenced_problems(path: str, cls: Any) -> list[Problem]:
    """A file a `$ref` names must hold one JSON Schema, checked as an inline schema is."""
    shown = display_path(path)
    docs, problems = load_file(path, shown)
    if problems:
        return problems
    if len(docs) != 1 or not isinstance(docs[0].value, (dict, bool)):
        return [Problem(shown, 1, 1, "$", "a file named by $ref must hold one JSON Schema object")]
    # what the file holds is never shown: only where, and which rule of JSON Schema it breaks
    return [docs[0].problem(tuple(e.absolute_path), f"not a valid JSON Schema (it breaks the {e.validator!r} rule)")
            for e in cls(cls.META_SCHEMA).iter_errors(docs[0].value)]


_CHECKED: set[str] = set()  # metadata schemas (with where they were read) already found valid


def _schema_problems(schema: dict[str, Any], located: _Located, base: str,
                     roots: tuple[str, ...]) -> list[Problem]:
    """Every problem of one metadata schema. A schema is checked once per distinct schema and folder: a
    thousand agent files sharing one schema cost one check."""
    key = None
    if next(walk_refs(schema), None) is None:  # a schema naming other files depends on them: always checked
        try:
            key = json.dumps([schema, os.path.dirname(base), roots], sort_keys=True)
        except (TypeError, ValueError):
            key = None
    if key is not None and key in _CHECKED:
        return []
    problems = _unchecked_schema_problems(schema, located, base, roots)
    if key is not None and not problems:
        if len(_CHECKED) > 10_000:
            _CHECKED.clear()
        _CHECKED.add(key)
    return problems


def _unchecked_schema_problems(schema: dict[str, Any], located: _Located, base: str,
                               roots: tuple[str, ...]) -> list[Problem]:
    cls = validators.validator_for(schema, default=validators.Draft202012Validator)
    problems: list[Problem] = []
    fast_ok = False
    if cls is validators.Draft202012Validator:
        try:
            fast_ok = bool(jsonschema_rs.meta.is_valid(schema))
        except Exception:
            fast_ok = False
    for error in () if fast_ok else cls(cls.META_SCHEMA).iter_errors(schema):
        problems.append(located.problem(tuple(error.absolute_path),
                                        f"not a valid JSON Schema: {error.message}"))
    if problems:
        return problems
    base_dir = os.path.dirname(base)
    for path, ref in walk_refs(schema):
        target = ref.split("#", 1)[0]
        if not target:
            continue
        if urlparse(target).scheme:
            problems.append(located.problem(path, f"$ref {ref!r} is not a local file; only local refs resolve"))
        elif not inside(os.path.join(base_dir, unquote(target)), roots):
            problems.append(located.problem(path, f"$ref {ref!r} is outside the agent file's folder and the "
                                                  "working directory; only files inside them are read"))
        elif not os.path.isfile(os.path.join(base_dir, unquote(target))):
            problems.append(located.problem(path, f"$ref {ref!r}: no such file"))
        else:
            problems.extend(_referenced_problems(os.path.join(base_dir, unquote(target)), cls))
    if problems:
        return problems
    full = with_base(schema, base)
    validator = cls(full, registry=Registry(retrieve=retriever(roots)),  # type: ignore[call-arg]
                    format_checker=cls.FORMAT_CHECKER)
    examples = schema.get("examples", [])
    for i, example in enumerate(examples if isinstance(examples, list) else []):
        try:
            errors = list(validator.iter_errors(example))
        except _UNUSABLE as exc:
            return [located.problem(("examples", i), f"schema cannot be used: {exc}")]
        for error in errors:
            where = ("examples", i, *error.absolute_path)
            problems.append(located.problem(where, f"example does not match the schema: {error.message}"))
    return problems
