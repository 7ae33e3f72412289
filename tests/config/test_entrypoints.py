"""Resolving an agent file's function references: a module or a file (inside its package or alone), and what
is said when one does not resolve."""

from __future__ import annotations

import pytest

from host.config.definitions import FunctionRef
from host.config.entrypoints import EntrypointError, load_function, load_object, module_name_for_file, package_of


def test_a_file_inside_a_package_is_imported_as_part_of_it(tmp_path):
    pkg = tmp_path / "shop" / "agents"
    pkg.mkdir(parents=True)
    (tmp_path / "shop" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "helpers.py").write_text("GREETING = 'hi'\n")
    (pkg / "bot.py").write_text("from .helpers import GREETING\n\nasync def entrypoint(ctx):\n    return GREETING\n")
    (tmp_path / "alone.py").write_text("async def entrypoint(ctx):\n    pass\n")
    assert package_of(str(pkg / "bot.py")) == (str(tmp_path), "shop.agents.bot")
    assert package_of(str(tmp_path / "alone.py")) is None
    assert module_name_for_file(str(pkg / "bot.py")) == "shop.agents.bot"
    assert module_name_for_file(str(tmp_path / "alone.py")).endswith("_alone")
    fn = load_function(FunctionRef.parse("shop/agents/bot.py:entrypoint", str(tmp_path)))
    assert fn.__module__ == "shop.agents.bot"  # its relative import worked


@pytest.mark.parametrize(("body", "ref", "message"), [
    ("x = 1\n", "m1.py:f", "'{file}' has no attribute 'f'"),
    ("x = 1\n", "m2.py:x", "'m2.py:x' is not callable"),
    ("raise RuntimeError('no database')\n", "m3.py:f", "importing '{file}' raised RuntimeError: no database"),
    ("import sys\nsys.exit(0)\n", "m4.py:f", "importing '{file}' raised SystemExit: 0: the module ran its program"),
])
def test_what_does_not_resolve_is_said(tmp_path, body, ref, message):
    name = ref.split(":")[0]
    (tmp_path / name).write_text(body)
    with pytest.raises(EntrypointError) as caught:
        load_function(FunctionRef.parse(ref, str(tmp_path)))
    assert str(caught.value).startswith(message.format(file=str(tmp_path / name)))


def test_a_missing_file_suggests_the_path_from_the_agent_files_folder(tmp_path, monkeypatch):
    (tmp_path / "agents.d").mkdir()
    (tmp_path / "bot.py").write_text("async def entrypoint(ctx):\n    pass\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(EntrypointError) as caught:
        load_object(FunctionRef.parse("bot.py:entrypoint", str(tmp_path / "agents.d")))
    text = str(caught.value)
    assert "does not exist (a path is read from the agent file's folder, agents.d)" in text
    assert "../bot.py:entrypoint" in text
