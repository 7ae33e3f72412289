"""Which files a set of paths names: sorted, leftovers skipped, what cannot be an agent file said."""

import os

from host.config.discovery import discover


def test_discovery_is_sorted_and_skips_leftovers(tmp_path):
    for name in ["b.yaml", "a.yml", ".hidden.yaml", "c.yaml~", "d.yaml.swp", "e.bak", "notes.txt"]:
        (tmp_path / name).write_text("x: 1\n")
    files, problems = discover([str(tmp_path)])
    assert [f.rsplit("/", 1)[1] for f in files] == ["a.yml", "b.yaml"]
    assert problems == []


def test_an_agent_file_that_is_not_a_regular_file_is_an_error_naming_it(tmp_path):
    (tmp_path / "a-directory.yaml").mkdir()
    os.mkfifo(tmp_path / "a-fifo.yaml")
    (tmp_path / "ok.yaml").write_text("name: ok\nentrypoint: m:f\n")
    files, problems = discover([str(tmp_path)])
    assert [os.path.basename(f) for f in files] == ["ok.yaml"]
    assert [(os.path.basename(p.file), p.message.split(",")[0]) for p in problems] == [
        ("a-directory.yaml", "a directory"), ("a-fifo.yaml", "a FIFO")]
    assert problems[0].message.endswith("agent files must be regular files (rename it or move it out)")
