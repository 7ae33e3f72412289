"""Values that come from a dispatcher (job metadata): checked with bounded effort and shown bounded."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from host.config.untrusted import MAX_DEPTH, PatternTimeout, bounded, depth, excerpt, shorten


def test_depth_is_measured_without_recursion_and_stops_past_the_bound():
    assert depth(1) == 0 and depth([]) == 1 and depth({"a": [1, {"b": []}]}) == 4
    deep: list = []
    for _ in range(100_000):  # far past Python's recursion limit
        deep = [deep]
    assert depth(deep) == MAX_DEPTH + 1


def test_what_is_shown_of_a_value_is_bounded():
    assert excerpt("short") == "'short'"
    assert excerpt("x" * 100) == "'" + "x" * 39 + "... (102 characters)"
    assert shorten("m" * 10) == "m" * 10 and shorten("m" * 400).endswith("... (400 characters)")


def test_a_pattern_that_backtracks_on_a_hostile_value_is_cut_off():
    validator = bounded(Draft202012Validator)({"type": "string", "pattern": "^(a+)+$"})
    assert validator.is_valid("aaaa")
    with pytest.raises(PatternTimeout):
        validator.is_valid("a" * 5000 + "!")
