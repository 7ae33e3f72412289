"""The project files an agent's code was loaded from, and whether they changed since (what a reload checks)."""

from __future__ import annotations

import importlib
import json
import os
import sys

from host.config.sources import ImportRecorder, changed, project_files, snapshot


def test_imports_are_recorded_and_only_the_projects_files_are_kept(tmp_path, monkeypatch):
    (tmp_path / "mine_for_sources.py").write_text("import json\nVALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with ImportRecorder() as recorded:
        module = importlib.import_module("mine_for_sources")
    try:
        assert "mine_for_sources" in recorded.names
        files = project_files([module, json, os])  # json and os come with the installation
        assert files == [os.path.realpath(tmp_path / "mine_for_sources.py")]
        assert recorded not in sys.meta_path  # uninstalled on exit
    finally:
        sys.modules.pop("mine_for_sources", None)


def test_a_change_is_an_edit_a_replacement_or_a_deletion(tmp_path):
    a, b, c = (tmp_path / n for n in ("a.py", "b.py", "c.py"))
    for f in (a, b, c):
        f.write_text("x = 1\n")
    before = snapshot([str(a), str(b), str(c), str(tmp_path / "missing.py")])
    assert before[str(tmp_path / "missing.py")] == (0, -1) and changed(before) == []
    b.write_text("x = 22\n")  # another size
    c.unlink()
    assert changed(before) == [str(b), str(c)]
    (tmp_path / "missing.py").write_text("now here\n")
    assert str(tmp_path / "missing.py") in changed(before)


def test_the_installed_roots_are_looked_up_once_per_process(monkeypatch):
    # each look copies all of sysconfig's variables, and a job process forked from a template would copy the
    # pages they are on: the template looks once, its job processes reuse that
    import os
    import sys

    from host.config import sources

    first = sources._installed_roots()
    looked = []
    monkeypatch.setattr(sources.sysconfig, "get_paths", lambda: looked.append(1) or {})
    assert sources._installed_roots() == first
    assert any(root.startswith(os.path.realpath(sys.prefix)) for root in first)
    assert looked == []
