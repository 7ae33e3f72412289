"""Agent code checked where it will run: imported in a bounded child, each request blamed or answered."""

from host.config.definitions import FunctionRef
from host.config.import_check import CheckRequest, check_functions


def ref(tmp_path, name, body, function="entrypoint"):
    path = tmp_path / f"{name}.py"
    path.write_text(body)
    return FunctionRef.parse(f"{name}.py:{function}", str(tmp_path))


def test_good_and_bad_functions(tmp_path):
    good = ref(tmp_path, "good", "print('noise at import')\nasync def entrypoint(ctx): pass\n")
    sync = ref(tmp_path, "sync", "def entrypoint(ctx): pass\n")
    arity = ref(tmp_path, "arity", "async def entrypoint(): pass\n")
    missing = ref(tmp_path, "missing", "x = 1\n")
    boom = ref(tmp_path, "boom", "raise RuntimeError('nope')\n")
    setup = ref(tmp_path, "setup", "def prewarm(proc): pass\n", "prewarm")
    results = [r.error for r in check_functions([
        CheckRequest(good, "entrypoint"), CheckRequest(sync, "entrypoint"), CheckRequest(arity, "entrypoint"),
        CheckRequest(missing, "entrypoint"), CheckRequest(boom, "entrypoint"), CheckRequest(setup, "setup")])]
    assert results[0] is None
    assert results[1] == "the entrypoint must be an async function (async def)"
    assert results[2] == "the entrypoint must take exactly one argument"
    assert "has no attribute 'entrypoint'" in results[3]
    assert "raised RuntimeError: nope" in results[4]
    assert results[5] is None


def test_hanging_and_crashing_imports_are_blamed_and_the_rest_still_checked(tmp_path):
    hang = ref(tmp_path, "hang", "import time\ntime.sleep(60)\n")
    crash = ref(tmp_path, "crash", "import os\nos._exit(7)\n")
    good = ref(tmp_path, "fine", "async def entrypoint(ctx): pass\n")
    results = [r.error for r in check_functions([CheckRequest(hang, "entrypoint"), CheckRequest(crash, "entrypoint"),
                                                 CheckRequest(good, "entrypoint")], timeout=2.0)]
    assert results[0] == "importing it did not finish within 2s"
    assert results[1].startswith("importing it ended the process (exit 7)")
    assert results[2] is None


def test_module_reference_not_found(tmp_path):
    results = check_functions([CheckRequest(FunctionRef.parse("no_such_mod_xyz:f", str(tmp_path)), "setup")])
    assert results[0].error is not None and results[0].error.startswith("cannot import 'no_such_mod_xyz'")


def test_reports_the_project_files_an_import_loaded(tmp_path):
    (tmp_path / "helper.py").write_text("VALUE = 1\n")
    main = ref(tmp_path, "main_mod", "import helper\nimport json\nasync def entrypoint(ctx): pass\n")
    [result] = check_functions([CheckRequest(main, "entrypoint")])
    assert result.error is None
    expected = [str((tmp_path / name).resolve()) for name in ("helper.py", "main_mod.py")]
    assert sorted(result.sources) == expected
    assert all(size > 0 for _mtime, size in result.sources.values())
