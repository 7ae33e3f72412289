"""The reloader: validate -> diff -> apply, with a fake set of served agents."""

from __future__ import annotations

import logging

from host.config.loader import load
from host.ops.metrics import Metrics
from host.reload.reloader import Reloader


class Served:
    def __init__(self, folder) -> None:
        self.defs = {d.name: d for d in load([str(folder)], check_imports=False).require_ok().agents}
        self.applied = []

    def definitions(self):
        return dict(self.defs)

    def sources(self):
        return {}

    def apply(self, change, sources):
        self.applied.append(change)
        self.defs = {**{n: d for n, d in self.defs.items() if n not in {r.name for r in change.removed}},
                     **{d.name: d for d in change.added}, **{c.name: c.new for c in change.changes}}


def write(folder, name, body=""):
    (folder / f"{name}.yaml").write_text(f"name: {name}\nentrypoint: mod.py:entrypoint\n{body}")


def reloads(metrics, result):
    return metrics.registry.get_sample_value("agenthost_reloads_total", {"result": result})


async def test_a_valid_change_is_applied_and_logged(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    (tmp_path / "mod.py").write_text("async def entrypoint(ctx):\n    pass\n")
    write(tmp_path, "a")
    served, metrics = Served(tmp_path), Metrics()
    reloader = Reloader([str(tmp_path)], served, metrics, import_timeout=10)
    write(tmp_path, "a", "limits: {max_jobs: 2}\n")
    write(tmp_path, "b")
    assert await reloader.reload("test") is True
    [change] = served.applied
    assert [d.name for d in change.added] == ["b"] and [c.name for c in change.changed] == ["a"]
    assert "reload (test): added b; changed a (limits)" in caplog.text
    assert reloads(metrics, "applied") == 1
    assert await reloader.reload("again") is True
    assert reloads(metrics, "unchanged") == 1
    assert str(tmp_path) in reloader.watched_folders()


async def test_anything_invalid_refuses_the_whole_reload(tmp_path, caplog):
    (tmp_path / "mod.py").write_text("async def entrypoint(ctx):\n    pass\n")
    write(tmp_path, "a")
    served, metrics = Served(tmp_path), Metrics()
    reloader = Reloader([str(tmp_path)], served, metrics, import_timeout=10)
    write(tmp_path, "b")  # valid, but refused with the rest
    write(tmp_path, "a", "limits: {max_jobs: -1}\n")
    assert await reloader.reload("test") is False
    assert served.applied == [] and sorted(served.defs) == ["a"]
    assert "reload (test) refused, still serving the previous configuration:" in caplog.text
    assert "a.yaml:3:" in caplog.text and "$.limits.max_jobs" in caplog.text
    assert reloads(metrics, "refused") == 1


async def test_an_added_agent_whose_code_does_not_import_is_refused(tmp_path, caplog):
    (tmp_path / "mod.py").write_text("async def entrypoint(ctx):\n    pass\n")
    write(tmp_path, "a")
    served, metrics = Served(tmp_path), Metrics()
    reloader = Reloader([str(tmp_path)], served, metrics, import_timeout=10)
    (tmp_path / "bad.py").write_text("raise ImportError('nope')\n")
    (tmp_path / "b.yaml").write_text("name: b\nentrypoint: bad.py:entrypoint\n")
    assert await reloader.reload("test") is False
    assert "nope" in caplog.text and served.applied == []
