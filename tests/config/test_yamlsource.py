from host.config.yamlsource import MAX_FILE_BYTES, format_path, parse_documents, read_text


def test_positions_of_values_and_keys():
    docs, problems = parse_documents("f.yaml", "name: a\nshutdown:\n  timeout: 5s\n")
    assert problems == []
    doc = docs[0]
    assert doc.value == {"name": "a", "shutdown": {"timeout": "5s"}}
    assert doc.where(("shutdown", "timeout")) == (3, 12)
    assert doc.where(("shutdown", "timeout"), key=True) == (3, 3)
    assert doc.where(("shutdown", "missing")) == (3, 3)  # nearest located ancestor


def test_several_documents_and_empty_ones():
    docs, problems = parse_documents("f.yaml", "a: 1\n---\n---\nb: 2\n")
    assert problems == []
    assert [d.value for d in docs] == [{"a": 1}, {"b": 2}]
    assert docs[1].line == 4


def test_duplicate_key_is_an_error():
    _, problems = parse_documents("f.yaml", "a: 1\na: 2\n")
    assert [(p.line, p.column, p.path, p.message) for p in problems] == [(2, 1, "$.a", "duplicate key 'a'")]


def test_alias_bomb_is_refused():
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for i, name in enumerate("bcdefg"):
        prev = "abcdefg"[i]
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 10) + "]")
    _, problems = parse_documents("bomb.yaml", "\n".join(lines))
    assert len(problems) == 1 and "alias bomb" in problems[0].message


def test_syntax_error_has_position():
    _, problems = parse_documents("f.yaml", "a: [1, 2\nb: 3\n")
    assert problems[0].line == 2 and problems[0].message.startswith("YAML syntax error: ")


def test_binary_and_oversized_files():
    assert read_text("x", b"\x00\x01garbage")[1][0].message == "file is binary, not YAML text"
    assert "not UTF-8" in read_text("x", b"\xff\xfe\xfa")[1][0].message
    assert "too large" in read_text("x", b"a" * (MAX_FILE_BYTES + 1))[1][0].message


def test_environment_substitution():
    env = {"HOST": "example", "EMPTY": ""}
    docs, problems = parse_documents(
        "f.yaml", "a: ${HOST}\nb: ${NOPE:-fallback}\nc: $${HOST}\nd: x${EMPTY}y\ne: ${MISSING}\n", env)
    assert docs[0].value == {"a": "example", "b": "fallback", "c": "${HOST}", "d": "xy", "e": ""}
    assert [(p.line, p.path, p.message) for p in problems] == [
        (5, "$.e", "environment variable MISSING is not set and has no default")]


def test_an_empty_variable_takes_the_colon_default_and_unset_ones_can_be_notes():
    env = {"EMPTY": ""}
    text = "a: ${EMPTY:-colon}\nb: ${EMPTY-dash}\nc: ${UNSET-dash}\nd: ${UNSET}\n"
    docs, problems = parse_documents("f.yaml", text, env)
    assert docs[0].value == {"a": "colon", "b": "", "c": "dash", "d": ""} and len(problems) == 1
    notes: list = []
    docs, problems = parse_documents("f.yaml", text, env, notes)
    assert problems == [] and [(n.line, n.path, n.message) for n in notes] == [
        (4, "$.d", "environment variable UNSET is not set (not checked)")]


def test_format_path():
    assert format_path(()) == "$"
    assert format_path(("a", 0, "b")) == "$.a[0].b"
    assert format_path(("$ref",)) == "$['$ref']"


def test_an_aliased_scalar_is_substituted_once():
    import tracemalloc

    text = 'a: &big "' + "$$" * 50_000 + '"\nrefs: [' + ", ".join(["*big"] * 2000) + "]\n"
    tracemalloc.start()
    [doc], problems = parse_documents("f.yaml", text, env={})
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert problems == []
    assert doc.value["a"] == "$" * 50_000 and all(v is doc.value["a"] for v in doc.value["refs"])
    assert peak < 20 * 1024 * 1024  # 2,000 copies of 50 KB would be 100 MB


def test_substitution_has_a_byte_budget_per_file():
    from host.config.yamlsource import MAX_SUBSTITUTED_BYTES

    text = "".join(f"k{i}: ${{BIG}}\n" for i in range(20))
    _, [problem] = parse_documents("f.yaml", text, env={"BIG": "x" * 100_000})
    assert problem.message == (f"${{VAR}} substitution makes more than {MAX_SUBSTITUTED_BYTES} bytes of text "
                               "in this file")


def test_a_required_variable_says_the_files_own_words_when_it_is_not_set():
    text = "a: ${KEY:?set KEY to your key}\nb: ${EMPTY?}\nc: ${EMPTY:?}\nd: ${KEY?x}\n"
    docs, problems = parse_documents("f.yaml", text, {"EMPTY": ""})
    assert [(p.line, p.message) for p in problems] == [
        (1, "environment variable KEY is not set: set KEY to your key"),
        (3, "environment variable EMPTY is not set"),  # `:?` takes an empty one for unset, as the shell does
        (4, "environment variable KEY is not set: x")]
    assert docs[0].value["b"] == ""
