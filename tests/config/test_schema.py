import re

import pytest
from jsonschema import Draft202012Validator

from host.config.schema import agent_schema, check_document
from host.config.yamlsource import parse_documents


def problems(text):
    docs, _ = parse_documents("a.yaml", text)
    return [(p.line, p.column, p.path, p.message) for p in check_document(docs[0])]


def test_schema_is_valid_and_every_property_is_described():
    schema = agent_schema()
    Draft202012Validator.check_schema(schema)

    def walk(node, where):
        for key, sub in node.get("properties", {}).items():
            assert "description" in sub, f"{where}.{key} has no description"
            walk(sub, f"{where}.{key}")

    walk(schema, "$")


def test_unknown_key_with_suggestion():
    assert problems("name: a\nentrypoint: m:f\nshutdwn: {}\n") == [
        (3, 1, "$.shutdwn", "unknown key 'shutdwn' (did you mean 'shutdown'?)")]


def test_duration_message():
    assert problems("name: a\nentrypoint: m:f\nshutdown:\n  timeout: '-5s'\n") == [
        (4, 12, "$.shutdown.timeout",
         "'-5s' is not a duration: seconds from 0 to 86400 as a number, or a string such as 500ms, 10s, 2m "
         "(at most a day)")]


def test_a_number_where_text_is_expected_is_told_to_be_quoted():
    assert problems("name: a\nentrypoint: m:f\nversion: 1.6\n") == [
        (3, 10, "$.version", "1.6 is read as a number, where text is expected: write it in quotes")]


def test_missing_required_and_enum():
    assert problems("name: a\ndispatch: sometimes\n") == [
        (1, 1, "$", "'entrypoint' is a required property"),
        (2, 11, "$.dispatch", "'sometimes' is not one of 'explicit', 'automatic'"),
    ]


def test_not_a_mapping():
    assert problems("- a\n") == [(1, 1, "$", "an agent document must be a mapping, not list")]


def _schema_defaults(node, path=()):
    if isinstance(node, dict):
        if "default" in node and path:
            yield path, node["default"]
        for key, sub in node.get("properties", {}).items():
            yield from _schema_defaults(sub, (*path, key))


def test_definitions_use_the_schemas_defaults():
    """definitions.build restates each default of the schema; the two must agree."""
    from host.config.definitions import build, parse_duration
    from host.config.metadata import load_policy

    docs, _ = parse_documents("a.yaml", "name: a\nentrypoint: m:f\n")
    definition = build(docs[0], ".", load_policy(docs[0], ".")[0])
    checked = 0
    for path, default in _schema_defaults(agent_schema()):
        value = definition
        for key in path:
            value = getattr(value, key)
        if isinstance(default, dict) and not default:
            assert value in ({}, (), None) or hasattr(value, "__dataclass_fields__"), path
            continue
        if path[-1] in ("timeout", "init_timeout", "crash_backoff"):
            default = parse_duration(default)
        if path == ("inherit_env",):
            default = None  # 'all' is built as None: nothing is filtered
        assert value == default, f"{'.'.join(path)}: schema says {default!r}, definitions build {value!r}"
        checked += 1
    assert checked >= 15


def test_the_duration_pattern_is_the_schemas():
    from host.config.definitions import _DURATION

    [pattern] = [b["pattern"] for b in agent_schema()["$defs"]["duration"]["oneOf"] if b["type"] == "string"]
    samples = ["10s", "1.5s", "500ms", "2m", "10", "1h", "-1s", ".5s", "1.s", "10 s", "s", "1e3s"]
    assert [bool(re.match(pattern, s)) for s in samples] == [bool(_DURATION.match(s)) for s in samples]


AGREE = [
    "name: a\nentrypoint: m:f\n",
    "name: a\nentrypoint: dir/x.py:f\nshutdown: {timeout: 10s, when: manual}\nlimits: {max_jobs: 3}\n",
    "name: a\nentrypoint: m:f\nshutdown: {timeout: '-5s'}\n",
    "name: a\nentrypoint: m:f\nshutdown: {timeout: 86401}\n",
    'name: "a\\n"\nentrypoint: m:f\n',
    "name: a\nentrypoint: m:f\nenv: {'K\\n': v}\n",
    "name: a\nentrypoint: 'm:f\\n'\n",
    "name: a\nentrypoint: m:f\nbogus: 1\n",
    "name: a\nentrypoint: m:f\ndispatch: sometimes\n",
    "name: a\nentrypoint: m:f\napi: livekit-agents\ninherit_env: [PATH, HOME]\n",
    "name: a\nentrypoint: m:f\ninherit_env: some\n",
    "name: a\nentrypoint: m:f\nparticipant: {attributes: {k: 1}}\n",
    "name: a\nentrypoint: m:f\nmetadata: {schema: {type: object}, required: true}\n",
]


@pytest.mark.parametrize("text", AGREE)
def test_the_compiled_fast_path_agrees_with_the_detailed_check(text):
    from host.config.schema import _fast_validator, _validator, fast_valid

    if _fast_validator() is None:
        pytest.skip("jsonschema-rs is not installed")
    docs, _ = parse_documents("a.yaml", text)
    detailed = not list(_validator().iter_errors(docs[0].value))
    assert fast_valid(_fast_validator(), docs[0].value) == detailed
