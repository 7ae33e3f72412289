"""An agent's one template, as its pool uses it: started once for every start waiting, not again once closed,
given up for code that cannot be forked."""

from __future__ import annotations

import asyncio

from host.config.loader import load
from host.process.template_slot import TemplateSlot


def definition(tmp_path, body: str = ""):
    (tmp_path / "mod.py").write_text(f"{body}\nasync def entrypoint(ctx): pass\n")
    (tmp_path / "a.yaml").write_text("name: a\nentrypoint: mod.py:entrypoint\nprocesses: {init_timeout: 20s}\n")
    return load([str(tmp_path)], check_imports=False).require_ok().agents[0]


async def test_one_template_for_every_waiting_start_and_none_started_once_closed(tmp_path):
    imported: list[dict] = []
    slot = TemplateSlot(definition(tmp_path), "text", 20, None, imported.append)
    first, second = await asyncio.gather(slot.for_start(False), slot.for_start(False))
    assert first is not None and first is second and slot.current is first and slot.pid == first.pid
    assert str(tmp_path / "mod.py") in imported[0], "what it imported is told to the pool"
    assert await slot.for_start(closed=True) is first  # a running template still serves a late start
    first.kill()
    await first.wait_exit(10)
    assert slot.pid is None and await slot.for_start(closed=True) is None
    await slot.retire()


async def test_code_that_cannot_be_forked_is_given_up_for_good(tmp_path):
    body = "import threading, time\nthreading.Thread(target=time.sleep, args=(60,), daemon=True).start()"
    slot = TemplateSlot(definition(tmp_path, body), "text", 20, None, lambda _: None)
    assert await slot.for_start(False) is None and slot.current is None
    assert await slot.for_start(False) is None  # not tried again: its processes start from the fork server
