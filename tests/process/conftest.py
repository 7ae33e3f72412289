"""A simulated cgroup v2 tree for the confinement tests: plain files where the kernel has its own."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def fake_v2(tmp_path: Path) -> Callable[..., tuple[Path, Path]]:
    """Makes a /proc and a cgroup2 mount with this process in `svc`: (proc root, its own group)."""
    def make(controllers: str = "cpu memory pids") -> tuple[Path, Path]:
        proc = tmp_path / "proc"
        (proc / "self").mkdir(parents=True)
        mount = tmp_path / "cg"
        own = mount / "svc"
        own.mkdir(parents=True)
        (own / "cgroup.controllers").write_text(controllers + "\n")
        (own / "cgroup.subtree_control").write_text("")
        (proc / "self" / "mountinfo").write_text(f"41 31 0:38 / {mount} rw - cgroup2 cgroup2 rw\n")
        (proc / "self" / "cgroup").write_text("0::/svc\n")
        return proc, own
    return make
