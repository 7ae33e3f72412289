"""Job metadata: loading each agent's metadata JSON Schema and checking payloads against it.

Only local files resolve as `$ref`s (relative to the schema that refers to them);
a URL is reported, never fetched. Checking a payload is what a job offer does
before it is accepted, so a `MetadataChecker` is cheap to reuse.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import regex
from jsonschema import exceptions as js_exceptions
from jsonschema import validators
from referencing import Registry, Resource
from referencing.exceptions import CannotDetermineSpecification, NoSuchResource, Unresolvable
from referencing.jsonschema import DRAFT202012

from host.config.definitions import MetadataPolicy
from host.config.schema import end_anchored, fast_valid
from host.config.yamlsource import Document, JsonPath, display_path, load_file, parse_documents
from host.errors import Problem

_UNUSABLE = (Unresolvable, CannotDetermineSpecification, js_exceptions.SchemaError)

MAX_METADATA_BYTES = 64 * 1024  # a job's metadata above this is refused unread
MAX_DEPTH = 64  # nesting of arrays and objects in job metadata
REGEX_TIMEOUT = 0.1  # seconds one schema `pattern` may take on one value


class PatternTimeout(Exception):
    """A schema pattern took too long on a value (catastrophic backtracking)."""


@functools.lru_cache(maxsize=512)
def _compiled(pattern: str) -> regex.Pattern[str]:
    return regex.compile(end_anchored(pattern))


def _search(pattern: str, text: str) -> bool:
    try:
        return _compiled(pattern).search(text, timeout=REGEX_TIMEOUT, concurrent=True) is not None
    except TimeoutError:
        raise PatternTimeout(f"pattern {_excerpt(pattern)} took over {REGEX_TIMEOUT * 1000:g} ms on a value "
                             f"{len(text)} characters long") from None


def _pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Iterator[js_exceptions.ValidationError]:
    if validator.is_type(instance, "string") and not _search(patrn, instance):
        yield js_exceptions.ValidationError(f"{_excerpt(instance)} does not match {patrn!r}")


def _pattern_properties(validator: Any, properties: dict[str, Any], instance: Any,
                        schema: Any) -> Iterator[js_exceptions.ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for patrn, subschema in properties.items():
        for k, v in instance.items():
            if _search(patrn, k):
                yield from validator.descend(v, subschema, path=k, schema_path=patrn)


def _bounded(cls: Any) -> Any:
    """`cls` with `pattern` and `patternProperties` that cannot hang on a hostile value."""
    return validators.extend(cls, {"pattern": _pattern, "patternProperties": _pattern_properties})  # type: ignore[no-untyped-call]


def _excerpt(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _shorten(message: str, limit: int = 300) -> str:
    """A message about a value from a job, bounded: the value may be long, and may be personal data."""
    return message if len(message) <= limit else message[:limit] + f"... ({len(message)} characters)"


def _depth(value: Any) -> int:
    """How deeply arrays and objects nest in `value` (iteratively: a deep value must not recurse)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def schema_roots(agent_dir: str) -> tuple[str, ...]:
    """The folders metadata schemas and their `$ref`s may be read from: the agent file's folder and the
    working directory, each with everything below it."""
    return tuple(dict.fromkeys(os.path.realpath(d) for d in (agent_dir, os.getcwd())))


def inside(path: str, roots: tuple[str, ...]) -> bool:
    real = os.path.realpath(path)
    return any(os.path.commonpath([real, root]) == root for root in roots)


def _retriever(roots: tuple[str, ...]) -> Callable[[str], Resource[Any]]:
    def retrieve(uri: str) -> Resource[Any]:
        return _retrieve(uri, roots)

    return retrieve


def _retrieve(uri: str, roots: tuple[str, ...]) -> Resource[Any]:
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise NoSuchResource(uri)
    path = unquote(parsed.path)
    if not inside(path, roots):
        raise NoSuchResource(uri)
    docs, problems = load_file(path)
    if problems or len(docs) != 1:
        raise NoSuchResource(uri)
    return Resource.from_contents(docs[0].value, default_specification=DRAFT202012)


def _with_base(schema: dict[str, Any], base_file: str) -> dict[str, Any]:
    if "$id" in schema:
        return schema
    return {**schema, "$id": Path(base_file).resolve().as_uri()}


def _walk_refs(value: Any, path: JsonPath = ()) -> Iterator[tuple[JsonPath, str]]:
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "$ref" and isinstance(v, str):
                yield (*path, k), v
            else:
                yield from _walk_refs(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk_refs(v, (*path, i))


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
            with contextlib.suppress(Exception):
                import jsonschema_rs

                self._fast = jsonschema_rs.validator_for(policy.schema)
        if policy.schema is not None:
            base = policy.schema_file or os.path.join(os.getcwd(), "inline.schema.json")
            schema = _with_base(policy.schema, base)
            cls = _bounded(validators.validator_for(schema))
            retrieve = _retriever(policy.roots)
            self._validator = cls(schema, registry=Registry(retrieve=retrieve),  # type: ignore[call-arg]
                                  format_checker=cls.FORMAT_CHECKER)

    def check(self, payload: str, source: str = "<metadata>") -> tuple[Any, list[Problem]]:
        """The parsed metadata and every problem with it (empty when it may be accepted).

        Never raises, and is bounded: a payload over MAX_METADATA_BYTES or nested deeper than MAX_DEPTH is
        refused without further work, and a schema pattern gets REGEX_TIMEOUT per value."""
        def refused(message: str, line: int = 0, column: int = 0) -> tuple[Any, list[Problem]]:
            return None, [Problem(source, line, column, "$", message)]

        if len(payload) > MAX_METADATA_BYTES:  # characters; a byte bound would need the encoding first
            return refused(f"metadata is {len(payload)} characters, over the limit of {MAX_METADATA_BYTES}")
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
        if _depth(value) > MAX_DEPTH:
            return refused(f"metadata nests arrays and objects deeper than {MAX_DEPTH} levels")
        if fast_valid(self._fast, value):
            return value, []
        try:
            errors = list(self._validator.iter_errors(value))
        except _UNUSABLE as exc:
            return refused(f"metadata schema cannot be used: {_excerpt(str(exc), 200)}")
        except PatternTimeout as exc:
            return refused(f"metadata refused: {exc}")
        except (RecursionError, ValueError, TypeError) as exc:
            return refused(f"metadata could not be checked: {type(exc).__name__}: {_excerpt(str(exc), 200)}")
        if not errors:
            return value, []
        docs, _ = parse_documents(source, payload)
        doc = docs[0] if docs else Document(source, value, 1, 1)
        return None, [doc.problem(tuple(e.absolute_path), _shorten(e.message)) for e in errors]


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
        policy = MetadataPolicy(_with_base(schema, base), None, required, roots)
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
    if next(_walk_refs(schema), None) is None:  # a schema naming other files depends on them: always checked
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


@functools.cache
def _fast_meta() -> Any:
    try:
        import jsonschema_rs
    except ImportError:
        return None
    return jsonschema_rs.meta


def _unchecked_schema_problems(schema: dict[str, Any], located: _Located, base: str,
                               roots: tuple[str, ...]) -> list[Problem]:
    cls = validators.validator_for(schema, default=validators.Draft202012Validator)
    problems: list[Problem] = []
    meta = _fast_meta()
    fast_ok = False
    if meta is not None and cls is validators.Draft202012Validator:
        try:
            fast_ok = bool(meta.is_valid(schema))
        except Exception:
            fast_ok = False
    for error in () if fast_ok else cls(cls.META_SCHEMA).iter_errors(schema):
        problems.append(located.problem(tuple(error.absolute_path),
                                        f"not a valid JSON Schema: {error.message}"))
    if problems:
        return problems
    base_dir = os.path.dirname(base)
    for path, ref in _walk_refs(schema):
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
    full = _with_base(schema, base)
    validator = cls(full, registry=Registry(retrieve=_retriever(roots)),  # type: ignore[call-arg]
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
