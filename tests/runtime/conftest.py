from __future__ import annotations

import pytest

from host.config.loader import load


@pytest.fixture
def make_agent(tmp_path):
    """The definition of one agent file written with `body` (an entrypoint module beside it); each agent
    name has a folder of its own, so a second call for the same name is an edit of the same file."""

    def make(body: str = "", name: str = "a", module: str = "async def entrypoint(ctx):\n    pass\n"):
        folder = tmp_path / f"agent-{name}"
        folder.mkdir(exist_ok=True)
        (folder / "mod.py").write_text(module)
        (folder / f"{name}.yaml").write_text(f"name: {name}\nentrypoint: mod.py:entrypoint\n{body}")
        return load([str(folder)], check_imports=False).require_ok().agents[0]

    return make
