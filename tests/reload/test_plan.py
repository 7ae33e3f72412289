import dataclasses

from host.config.definitions import FunctionRef
from host.config.loader import load
from host.reload.plan import plan


def definitions(folder, **docs):
    folder.mkdir(exist_ok=True)
    for name, body in docs.items():
        (folder / f"{name}.yaml").write_text(f"name: {name}\nentrypoint: mod:entrypoint\n{body}")
    catalog = load([str(folder)], check_imports=False).require_ok()
    return {d.name: d for d in catalog.agents}


def test_added_removed_changed_and_unchanged(tmp_path):
    before = definitions(tmp_path / "a", keep="", edit="limits: {max_jobs: 1}\n", gone="")
    (tmp_path / "a" / "gone.yaml").unlink()
    after = definitions(tmp_path / "a", keep="", edit="limits: {max_jobs: 2}\n", new="")
    p = plan(before, list(after.values()))
    assert [d.name for d in p.added] == ["new"]
    assert [d.name for d in p.removed] == ["gone"]
    assert [c.name for c in p.changed] == ["edit"]
    assert p.summary() == "added new; changed edit (limits); removed gone"
    edit = p.changed[0]
    assert not edit.needs_registration and not edit.needs_new_processes


def test_disabled_agent_counts_as_removed_and_code_changes_are_reported(tmp_path):
    before = definitions(tmp_path, one="", two="")
    after = [before["one"], dataclasses.replace(before["two"], enabled=False)]
    p = plan(before, after, code_changed={"one"})
    assert [d.name for d in p.removed] == ["two"]
    assert p.summary() == "changed one (code); removed two"
    assert p.changed[0].needs_new_processes and not p.changed[0].definition_changed


def test_what_a_change_needs(tmp_path):
    d = definitions(tmp_path, one="")["one"]
    moved = dataclasses.replace(d, line=d.line + 3)
    assert plan({"one": d}, [moved]).empty  # only its place in the file moved
    renamed = dataclasses.replace(d, dispatch="automatic")
    assert plan({"one": d}, [renamed]).changed[0].needs_registration
    other = dataclasses.replace(d, entrypoint=FunctionRef.parse("other:entrypoint", str(tmp_path)))
    c = plan({"one": d}, [other], code_changed={"one"}).changed[0]
    assert c.needs_new_processes and not c.needs_registration
    assert plan({"one": d}, [other], code_changed={"one"}).summary() == "changed one (entrypoint, code)"
