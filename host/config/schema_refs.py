"""Where a metadata schema's `$ref`s may be read from: local files inside the agent's folder or the working
directory, resolved relative to the schema that refers to them; anything else (a URL) is never fetched."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from referencing import Resource
from referencing.exceptions import NoSuchResource
from referencing.jsonschema import DRAFT202012

from host.config.yamlsource import JsonPath, load_file


def schema_roots(agent_dir: str) -> tuple[str, ...]:
    """The folders metadata schemas and their `$ref`s may be read from: the agent file's folder and the
    working directory, each with everything below it."""
    return tuple(dict.fromkeys(os.path.realpath(d) for d in (agent_dir, os.getcwd())))


def inside(path: str, roots: tuple[str, ...]) -> bool:
    real = os.path.realpath(path)
    return any(os.path.commonpath([real, root]) == root for root in roots)


def retriever(roots: tuple[str, ...]) -> Callable[[str], Resource[Any]]:
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


def with_base(schema: dict[str, Any], base_file: str) -> dict[str, Any]:
    if "$id" in schema:
        return schema
    return {**schema, "$id": Path(base_file).resolve().as_uri()}


def walk_refs(value: Any, path: JsonPath = ()) -> Iterator[tuple[JsonPath, str]]:
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "$ref" and isinstance(v, str):
                yield (*path, k), v
            else:
                yield from walk_refs(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk_refs(v, (*path, i))
