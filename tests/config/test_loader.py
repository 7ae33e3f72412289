from host.config.loader import discover, load


def test_discovery_is_sorted_and_skips_leftovers(tmp_path):
    for name in ["b.yaml", "a.yml", ".hidden.yaml", "c.yaml~", "d.yaml.swp", "e.bak", "notes.txt"]:
        (tmp_path / name).write_text("x: 1\n")
    files, problems = discover([str(tmp_path)])
    assert [f.rsplit("/", 1)[1] for f in files] == ["a.yml", "b.yaml"]
    assert problems == []


def test_duplicate_name_cites_both_places(tmp_path):
    (tmp_path / "a.yaml").write_text("name: x\nentrypoint: m:f\n")
    (tmp_path / "b.yaml").write_text("# second\nname: x\nentrypoint: m:f\n")
    catalog = load([str(tmp_path)], check_imports=False)
    assert [a.name for a in catalog.agents] == ["x"]
    (p,) = catalog.problems
    assert p.file.endswith("b.yaml") and (p.line, p.column, p.path) == (2, 7, "$.name")
    assert p.message.startswith("agent 'x' is already defined at ") and p.message.endswith("a.yaml:1")


def test_one_broken_file_does_not_hide_others(tmp_path):
    (tmp_path / "a.yaml").write_text("name: [\n")
    (tmp_path / "b.yaml").write_text("name: b\nentrypoint: m:f\nbogus: 1\n")
    (tmp_path / "c.yaml").write_text("name: c\nentrypoint: m:f\n")
    catalog = load([str(tmp_path)], check_imports=False)
    assert [a.name for a in catalog.agents] == ["c"]
    assert [p.file.rsplit("/", 1)[1] for p in catalog.problems] == ["a.yaml", "b.yaml"]


def test_entrypoint_import_problems_point_at_the_key(tmp_path):
    (tmp_path / "mod.py").write_text("def entrypoint(ctx): pass\n")
    (tmp_path / "a.yaml").write_text("name: a\n\nentrypoint: mod.py:entrypoint\n")
    catalog = load([str(tmp_path)])
    (p,) = catalog.problems
    assert (p.line, p.column, p.path) == (3, 13, "$.entrypoint")
    assert p.message == "mod.py:entrypoint: the entrypoint must be an async function (async def)"


def test_an_empty_file_is_an_error_not_an_absence(tmp_path):
    (tmp_path / "a.yaml").write_text("# only a comment\n")
    [problem] = load([str(tmp_path)], check_imports=False).problems
    assert problem.file.endswith("a.yaml") and "the file is empty" in problem.message


def test_two_automatic_agents_of_one_job_type_are_an_error_naming_both(tmp_path):
    (tmp_path / "a.yaml").write_text("name: a\nentrypoint: m:f\ndispatch: automatic\n")
    (tmp_path / "b.yaml").write_text("name: b\nentrypoint: m:f\ndispatch: automatic\n")
    (tmp_path / "c.yaml").write_text("name: c\nentrypoint: m:f\ndispatch: automatic\njob_type: publisher\n")
    [problem] = load([str(tmp_path)], check_imports=False).problems
    assert problem.file.endswith("b.yaml") and problem.path == "$.dispatch"
    assert "agent 'b' and agent 'a' (" in problem.message and "a.yaml:1)" in problem.message
