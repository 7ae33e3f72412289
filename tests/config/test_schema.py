import json

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
    text = json.dumps(schema)
    assert '"default"' in text


def test_unknown_key_with_suggestion():
    assert problems("name: a\nentrypoint: m:f\nshutdwn: {}\n") == [
        (3, 1, "$.shutdwn", "unknown key 'shutdwn' (did you mean 'shutdown'?)")]


def test_duration_message():
    assert problems("name: a\nentrypoint: m:f\nshutdown:\n  timeout: '-5s'\n") == [
        (4, 12, "$.shutdown.timeout",
         "'-5s' is not a duration (seconds as a number, or a string such as 500ms, 10s, 2m)")]


def test_missing_required_and_enum():
    assert problems("name: a\ndispatch: sometimes\n") == [
        (1, 1, "$", "'entrypoint' is a required property"),
        (2, 11, "$.dispatch", "'sometimes' is not one of 'explicit', 'automatic'"),
    ]


def test_not_a_mapping():
    assert problems("- a\n") == [(1, 1, "$", "an agent document must be a mapping, not list")]
