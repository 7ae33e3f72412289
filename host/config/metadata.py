"""Job metadata: loading each agent's metadata JSON Schema and checking payloads against it.

Only local files resolve as `$ref`s (relative to the schema that refers to them);
a URL is reported, never fetched. Checking a payload is what a job offer does
before it is accepted, so a `MetadataChecker` is cheap to reuse.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from jsonschema import exceptions as js_exceptions
from jsonschema import validators
from referencing import Registry, Resource
from referencing.exceptions import CannotDetermineSpecification, NoSuchResource, Unresolvable
from referencing.jsonschema import DRAFT202012

from host.config.definitions import MetadataPolicy
from host.config.yamlsource import Document, JsonPath, display_path, load_file, parse_documents
from host.errors import Problem

_UNUSABLE = (Unresolvable, CannotDetermineSpecification, js_exceptions.SchemaError)


def _retrieve(uri: str) -> Resource[Any]:
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise NoSuchResource(uri)
    path = unquote(parsed.path)
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


class MetadataChecker:
    """Validates metadata payloads against one agent's policy. Build it once per definition."""

    def __init__(self, policy: MetadataPolicy) -> None:
        self.policy = policy
        self._validator: Any = None
        if policy.schema is not None:
            base = policy.schema_file or os.path.join(os.getcwd(), "inline.schema.json")
            schema = _with_base(policy.schema, base)
            cls = validators.validator_for(schema)
            self._validator = cls(schema, registry=Registry(retrieve=_retrieve))  # type: ignore[call-arg]

    def check(self, payload: str, source: str = "<metadata>") -> tuple[Any, list[Problem]]:
        """The parsed metadata and every problem with it (empty when it may be accepted)."""
        if not payload.strip():
            if self.policy.required:
                return None, [Problem(source, 0, 0, "$", "metadata is required but the job has none")]
            return None, []
        try:
            value = json.loads(payload)
        except json.JSONDecodeError as exc:
            if self._validator is None:
                return payload, []  # free-form metadata, no schema to hold it to
            return None, [Problem(source, exc.lineno, exc.colno, "$", f"metadata is not JSON: {exc.msg}")]
        if self._validator is None:
            return value, []
        try:
            errors = list(self._validator.iter_errors(value))
        except _UNUSABLE as exc:
            return None, [Problem(source, 0, 0, "$", f"metadata schema cannot be used: {exc}")]
        if not errors:
            return value, []
        docs, _ = parse_documents(source, payload)
        doc = docs[0] if docs else Document(source, value, 1, 1)
        return None, [doc.problem(tuple(e.absolute_path), e.message) for e in errors]


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
    problems = _schema_problems(schema, located, base)
    policy = MetadataPolicy(schema, schema_file if schema_file else None, required)
    if not problems and schema_file is None:
        # inline schemas resolve their local $refs against the agent file's folder
        policy = MetadataPolicy(_with_base(schema, base), None, required)
    return policy, problems


def _schema_problems(schema: dict[str, Any], located: _Located, base: str) -> list[Problem]:
    cls = validators.validator_for(schema, default=validators.Draft202012Validator)
    problems: list[Problem] = []
    for error in cls(cls.META_SCHEMA).iter_errors(schema):
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
        elif not os.path.isfile(os.path.join(base_dir, unquote(target))):
            problems.append(located.problem(path, f"$ref {ref!r}: no such file"))
    if problems:
        return problems
    full = _with_base(schema, base)
    validator = cls(full, registry=Registry(retrieve=_retrieve))  # type: ignore[call-arg]
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
