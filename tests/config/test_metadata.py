import json

from host.config.metadata import MetadataChecker, load_policy
from host.config.yamlsource import parse_documents


def policy(tmp_path, text):
    (tmp_path / "a.yaml").write_text(text)
    docs, _ = parse_documents("a.yaml", text)
    return load_policy(docs[0], str(tmp_path))


def test_payload_errors_are_located(tmp_path):
    pol, problems = policy(tmp_path, "metadata:\n  schema:\n    type: object\n    required: [user_id]\n"
                                     "    properties:\n      user_id: {type: string}\n")
    assert problems == []
    checker = MetadataChecker(pol)
    value, found = checker.check('{"user_id": "u"}')
    assert value == {"user_id": "u"} and found == []
    _, found = checker.check('{\n  "user_id": 5\n}', "p.json")
    assert [(p.file, p.line, p.column, p.path) for p in found] == [("p.json", 2, 14, "$.user_id")]
    _, found = checker.check("{not json")
    assert found[0].message.startswith("metadata is not JSON")


def test_required_and_empty_metadata(tmp_path):
    pol, _ = policy(tmp_path, "metadata:\n  required: true\n")
    assert MetadataChecker(pol).check("")[1][0].message == "metadata is required but the job has none"
    pol, _ = policy(tmp_path, "metadata: {}\n")
    assert MetadataChecker(pol).check("") == (None, [])
    assert MetadataChecker(pol).check("free text") == ("free text", [])


def test_schema_file_with_local_ref_and_examples(tmp_path):
    (tmp_path / "defs.json").write_text(json.dumps({"$defs": {"id": {"type": "string", "minLength": 2}}}))
    (tmp_path / "m.json").write_text(json.dumps({
        "type": "object", "properties": {"id": {"$ref": "defs.json#/$defs/id"}},
        "examples": [{"id": "ok"}, {"id": "x"}]}))
    _, problems = policy(tmp_path, "metadata:\n  schema: m.json\n")
    assert [(p.file.endswith("m.json"), p.path) for p in problems] == [(True, "$.examples[1].id")]
    assert "example does not match the schema" in problems[0].message


def test_remote_ref_is_never_fetched(tmp_path):
    _, problems = policy(tmp_path, "metadata:\n  schema:\n    $ref: 'https://example.com/s.json'\n")
    assert problems[0].message == "$ref 'https://example.com/s.json' is not a local file; only local refs resolve"
    assert problems[0].line == 3


def test_missing_file_and_not_a_schema(tmp_path):
    _, problems = policy(tmp_path, "metadata:\n  schema: nope.json\n")
    assert problems[0].message == "metadata schema file 'nope.json' does not exist"
    _, problems = policy(tmp_path, "metadata:\n  schema:\n    type: 12\n")
    assert problems[0].path == "$.metadata.schema.type" and "not a valid JSON Schema" in problems[0].message


def test_an_inline_schema_resolves_refs_beside_its_agent_file_from_any_folder(tmp_path, monkeypatch):
    from host.config.loader import load

    folder = tmp_path / "agents.d"
    folder.mkdir()
    (folder / "user.json").write_text('{"type": "object", "required": ["user_id"]}')
    (folder / "a.yaml").write_text("name: a\nentrypoint: m:f\nmetadata:\n  schema: {$ref: user.json}\n")
    for cwd, path in ((tmp_path, "agents.d"), (folder, ".")):
        monkeypatch.chdir(cwd)
        catalog = load([path], check_imports=False)
        assert catalog.problems == (), (cwd, catalog.problems)
        checker = MetadataChecker(catalog.agents[0].metadata)
        assert checker.check('{"user_id": "u"}')[1] == []
        assert "'user_id' is a required property" in checker.check("{}")[1][0].message


def _checker(schema=None, required=False):
    from host.config.definitions import MetadataPolicy

    return MetadataChecker(MetadataPolicy(schema, None, required))


def test_hostile_payloads_are_refused_with_a_reason_and_never_raise():
    import json as _json
    import time

    from host.config.metadata import MAX_DEPTH, MAX_METADATA_BYTES

    schema = _checker({"type": "object", "properties": {"name": {"type": "string", "pattern": "^(a+)+$"}}})
    cases = {
        "[" * 100_000 + "]" * 100_000: f"over the limit of {MAX_METADATA_BYTES}",
        "[" * 20_000 + "]" * 20_000: "nested too deeply",
        '{"n": ' + "9" * 5000 + "}": "Exceeds the limit (4300 digits)",
        _json.dumps({"x": _json.loads("[" * 80 + "]" * 80)}): f"deeper than {MAX_DEPTH} levels",
    }
    for payload, reason in cases.items():
        value, problems = schema.check(payload)
        assert value is None and len(problems) == 1 and reason in problems[0].message, (reason, problems)
    started = time.monotonic()
    value, [problem] = schema.check(_json.dumps({"name": "a" * 31 + "b"}))
    assert time.monotonic() - started < 1.0 and "does not match" in problem.message
    free = _checker()
    assert free.check("[" * 20_000 + "]" * 20_000)[1] == []  # no schema: free-form text, as it is


def test_a_long_value_is_shortened_in_messages():
    [problem] = _checker({"type": "object", "properties": {"phone": {"type": "integer"}}}).check(
        '{"phone": "' + "5" * 5000 + '"}')[1]
    assert len(problem.message) < 400 and "characters)" in problem.message


def test_a_pattern_that_backtracks_forever_times_out(monkeypatch):
    import host.config.untrusted as untrusted

    monkeypatch.setattr(untrusted, "REGEX_TIMEOUT", 0.001)
    # a backreference the engine cannot shortcut: about 0.4 s on this value without the bound
    checker = _checker({"type": "string", "pattern": "^(a|aa)+(\\1)*c$"})
    _value, [problem] = checker.check('"' + "a" * 28 + '!"')
    assert "took over 1 ms" in problem.message


def test_validate_checks_schema_files_named_by_ref(tmp_path):
    from host.config.loader import load

    (tmp_path / "user.json").write_text('{"type": "objet"}')
    (tmp_path / "a.yaml").write_text("name: a\nentrypoint: m:f\nmetadata:\n  schema: {$ref: user.json}\n")
    [problem] = load([str(tmp_path)], check_imports=False).problems
    assert problem.file.endswith("user.json") and "not a valid JSON Schema" in problem.message
    (tmp_path / "user.json").write_text("- a list\n- not a schema\n")
    [problem] = load([str(tmp_path)], check_imports=False).problems
    assert "must hold one JSON Schema object" in problem.message


def test_formats_are_enforced_on_job_metadata(tmp_path):
    formats = {"email": ("a@example.com", "not-an-email"), "ipv4": ("10.0.0.1", "10.0.0.300"),
               "date-time": ("2026-11-29T10:00:00Z", "yesterday"), "date": ("2026-11-29", "2026-13-01"),
               "hostname": ("agents.example.com", "-bad-.example"), "uuid": ("0f8fad5b-d9cb-469f-a165-70867728950e",
                                                                           "not-a-uuid"),
               "uri": ("https://example.com/callback?x=1", "no scheme here"),
               "uri-reference": ("../relative/path", "http://exa mple.com/")}
    for name, (good, bad) in formats.items():
        pol, problems = policy(tmp_path, f"metadata:\n  schema:\n    type: object\n    properties:\n"
                                         f"      v: {{type: string, format: {name}}}\n")
        assert problems == [], name
        checker = MetadataChecker(pol)
        assert checker.check(json.dumps({"v": good}))[1] == [], name
        found = checker.check(json.dumps({"v": bad}))[1]
        assert [(p.path, p.message) for p in found] == [("$.v", f"{bad!r} is not a {name!r}")], name


def test_the_metadata_bound_counts_bytes_not_characters():
    from host.config.metadata import MAX_METADATA_BYTES

    free = _checker()
    emoji = "\U0001f600" * (MAX_METADATA_BYTES // 4 + 1)  # fewer characters than the bound, 4 bytes each
    assert len(emoji) < MAX_METADATA_BYTES
    value, [problem] = free.check(emoji)
    assert value is None and problem.message == f"metadata is over the limit of {MAX_METADATA_BYTES} bytes (UTF-8)"
    assert free.check("\U0001f600" * (MAX_METADATA_BYTES // 4)) == ("\U0001f600" * (MAX_METADATA_BYTES // 4), [])
