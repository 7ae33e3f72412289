from host.config.loader import load


def test_duplicate_name_cites_both_places(tmp_path):
    (tmp_path / "a.yaml").write_text("name: x\nentrypoint: m:f\n")
    (tmp_path / "b.yaml").write_text("# second\nname: x\nentrypoint: m:f\n")
    catalog = load([str(tmp_path)], check_imports=False)
    assert [a.name for a in catalog.agents] == ["x"]
    (p,) = catalog.problems
    assert p.file.endswith("b.yaml") and (p.line, p.column, p.path) == (2, 7, "$.name")
    assert p.message.startswith("agent 'x' is already defined at ") and p.message.endswith(
        "a.yaml:1 (to serve both as versions of one agent, give each a distinct `version:`)")


def test_versions_of_one_name_load_as_a_set_and_bad_sets_are_errors(tmp_path):
    (tmp_path / "a.yaml").write_text("name: x\nversion: v1\nweight: 9\nentrypoint: m:f\n---\n"
                                     "name: x\nversion: v2\nweight: 1\nentrypoint: m:g\nroute_by: tenant\n")
    catalog = load([str(tmp_path)], check_imports=False)
    assert [a.key for a in catalog.agents] == ["x@v1", "x@v2"]
    assert [(p.line, p.path, p.message) for p in catalog.problems] == [
        (10, "$.route_by", "version 'v2' of agent 'x' says route_by: tenant, version 'v1' ("
         f"{tmp_path}/a.yaml:1) says None: the versions of one agent register once and must agree on it")]
    (tmp_path / "a.yaml").write_text("name: x\nversion: v1\nweight: 0\nentrypoint: m:f\n---\n"
                                     "name: x\nversion: v1\nentrypoint: m:g\n---\nname: x\nentrypoint: m:h\n")
    messages = {p.line: p.message for p in load([str(tmp_path)], check_imports=False).problems}
    assert messages[6].startswith("version 'v1' of agent 'x' is already defined at ")
    assert messages[10].startswith("agent 'x' is already defined at ") and messages[10].endswith(
        "(to serve both as versions of one agent, give each a distinct `version:`)")
    assert messages[3] == ("every version of agent 'x' has weight 0: no new job could be given one (give one "
                           "version a weight above 0, or disable the agent)")


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


def test_dangling_links_and_link_loops_are_errors_naming_the_file(tmp_path):
    (tmp_path / "gone.yaml").symlink_to(tmp_path / "nowhere.yaml")
    (tmp_path / "loop.yaml").symlink_to(tmp_path / "loop.yaml")
    problems = {p.file.rsplit("/", 1)[-1]: p.message for p in load([str(tmp_path)], check_imports=False).problems}
    assert "which does not exist" in problems["gone.yaml"] and "nowhere.yaml" in problems["gone.yaml"]
    assert "symbolic link loop" in problems["loop.yaml"]


def test_a_link_out_of_the_agent_folder_is_not_read_and_one_within_it_is(tmp_path):
    agents = tmp_path / "agents"
    (agents / "..data").mkdir(parents=True)  # how Kubernetes mounts a ConfigMap: links to files within the folder
    (agents / "..data" / "inner.yaml").write_text("name: inner\nentrypoint: m:f\n")
    (agents / "inner.yaml").symlink_to(agents / "..data" / "inner.yaml")
    (tmp_path / "secrets.yaml").write_text("db_password_hunter2: x\n")
    (agents / "outer.yaml").symlink_to(tmp_path / "secrets.yaml")
    catalog = load([str(agents)], check_imports=False)
    assert [a.name for a in catalog.agents] == ["inner"]
    [problem] = catalog.problems
    assert problem.file.endswith("agents/outer.yaml")
    assert problem.message.startswith(f"a link to {tmp_path / 'secrets.yaml'}, outside the agent folder: not read")
    assert "hunter2" not in problem.message + problem.path
    named = load([str(agents / "outer.yaml")], check_imports=False)  # given as a path itself: read, as asked
    assert any("db_password_hunter2" in p.path for p in named.problems)


def test_schema_files_and_refs_outside_the_project_are_not_read(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    agents = tmp_path / "agents.d"
    agents.mkdir()
    (agents / "a.yaml").write_text("name: a\nentrypoint: m:f\nmetadata: {schema: /etc/passwd}\n")
    (agents / "b.yaml").write_text("name: b\nentrypoint: m:f\nmetadata: {schema: {$ref: ../../../../../etc/passwd}}\n")
    problems = {p.file: p.message for p in load(["agents.d"], check_imports=False).problems}
    assert "is outside the agent file's folder and the working directory" in problems["agents.d/a.yaml"]
    assert "is outside the agent file's folder and the working directory" in problems["agents.d/b.yaml"]
    assert "root:" not in " ".join(problems.values())


def test_a_substituted_value_never_appears_in_a_message(tmp_path):
    (tmp_path / "a.yaml").write_text("name: a\nentrypoint: m:f\nlimits: {max_jobs: '${TOKEN}'}\n"
                                     "participant: {name: 'x-${TOKEN}-{nope}'}\n")
    catalog = load([str(tmp_path)], env={"TOKEN": "sk-live-123456"}, check_imports=False)
    text = " ".join(p.message for p in catalog.problems)
    assert "sk-live-123456" not in text and "${TOKEN}" in text and len(catalog.problems) == 2


def test_names_and_env_keys_with_a_newline_and_endless_durations_are_errors(tmp_path):
    (tmp_path / "a.yaml").write_text('name: "a\\n"\nentrypoint: m:f\nenv: {"K\\n": v}\n')
    (tmp_path / "b.yaml").write_text("name: b\nentrypoint: m:f\nshutdown: {timeout: .inf}\n"
                                     "processes: {init_timeout: .nan}\n")
    problems = sorted((p.path, p.message) for p in load([str(tmp_path)], check_imports=False).problems)
    paths = [p for p, _ in problems]
    assert paths == ["$.env", "$.name", "$.processes.init_timeout", "$.shutdown.timeout"]
    assert all("not a duration" in m for p, m in problems if "timeout" in p)


def test_version_keys_without_a_version_and_a_take_out_that_cannot_happen_are_errors(tmp_path):
    (tmp_path / "a.yaml").write_text("name: x\nweight: 3\nentrypoint: m:f\n---\nname: y\nversion: v1\n"
                                     "take_out: {failures: 5, of_last: 2}\nentrypoint: m:f\n")
    messages = [p.message for p in load([str(tmp_path)], check_imports=False).problems]
    assert messages == ["weight is for versions of an agent: add `version:` (or remove it)",
                        "take_out.failures 5 is more than its of_last 2: the version could never be taken out"]


def test_a_number_or_boolean_from_the_environment_is_one_where_the_schema_wants_one(tmp_path, monkeypatch):
    """`memory_limit_mb: ${MEM:-800}` is 800 (or MEM's number); an env value stays text; text that is no number
    where one is wanted is an error that shows what was written, not the value."""
    (tmp_path / "a.yaml").write_text("name: a\nentrypoint: m:f\nlimits:\n  memory_limit_mb: ${MEM:-800}\n"
                                     "processes:\n  idle: ${IDLE}\nenv:\n  PORT: ${PORT:-8080}\n")
    monkeypatch.setenv("IDLE", "2")
    monkeypatch.delenv("MEM", raising=False)
    [agent] = load([str(tmp_path)], check_imports=False).require_ok().agents
    assert (agent.limits.memory_limit_mb, agent.processes.idle, dict(agent.env)) == (800, 2, {"PORT": "8080"})
    monkeypatch.setenv("MEM", "lots-of-it")
    [problem] = load([str(tmp_path)], check_imports=False).problems
    assert problem.message == "'${MEM:-800}' is not of type 'integer'", problem


def test_a_substituted_number_is_typed_through_an_alias_and_as_a_duration(tmp_path, monkeypatch):
    (tmp_path / "a.yaml").write_text("name: a\nentrypoint: m:f\nlimits:\n  memory_limit_mb: &m ${MEM:-800}\n"
                                     "  memory_warn_mb: *m\nshutdown:\n  timeout: ${T:-30}\n")
    monkeypatch.delenv("MEM", raising=False)
    monkeypatch.delenv("T", raising=False)
    [agent] = load([str(tmp_path)], check_imports=False).require_ok().agents
    assert (agent.limits.memory_limit_mb, agent.limits.memory_warn_mb, agent.shutdown.timeout) == (800, 800, 30.0)


def test_a_message_shows_what_was_written_where_the_value_stands_alone_only(tmp_path, monkeypatch):
    (tmp_path / "a.yaml").write_text("name: a\nentrypoint: m:f\nprocesses:\n  idle: ${IDLE}\n")
    monkeypatch.setenv("IDLE", "640")
    [problem] = load([str(tmp_path)], check_imports=False).problems
    assert problem.message == "${IDLE} is greater than the maximum of 64", problem
