"""Checking a value from a job (its metadata) within bounds: a size, a nesting depth, a time per pattern.

Job metadata comes from whoever created the dispatch. A schema `pattern` runs with a timeout (the `regex`
module's), nesting is measured without recursion, and messages quote at most an excerpt of the value.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import regex
from jsonschema import exceptions as js_exceptions
from jsonschema import validators

from host.config.schema import end_anchored

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
        raise PatternTimeout(f"pattern {excerpt(pattern)} took over {REGEX_TIMEOUT * 1000:g} ms on a value "
                             f"{len(text)} characters long") from None


def _pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Iterator[js_exceptions.ValidationError]:
    if validator.is_type(instance, "string") and not _search(patrn, instance):
        yield js_exceptions.ValidationError(f"{excerpt(instance)} does not match {patrn!r}")


def _pattern_properties(validator: Any, properties: dict[str, Any], instance: Any,
                        schema: Any) -> Iterator[js_exceptions.ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for patrn, subschema in properties.items():
        for k, v in instance.items():
            if _search(patrn, k):
                yield from validator.descend(v, subschema, path=k, schema_path=patrn)


def bounded(cls: Any) -> Any:
    """`cls` with `pattern` and `patternProperties` that cannot hang on a hostile value."""
    return validators.extend(cls, {"pattern": _pattern, "patternProperties": _pattern_properties})  # type: ignore[no-untyped-call]


def excerpt(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def shorten(message: str, limit: int = 300) -> str:
    """A message about a value from a job, bounded: the value may be long, and may be personal data."""
    return message if len(message) <= limit else message[:limit] + f"... ({len(message)} characters)"


def depth(value: Any) -> int:
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
