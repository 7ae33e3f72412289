import asyncio

from host.reload.watch import folders, watch


async def run_watch(tmp_path, action) -> list[list[str]]:
    """The changes the watch reports for what `action` does: the watch is known to be live (a probe file it
    reported) before, and to have reported all of it once a sentinel file written after it is reported."""
    calls: list[list[str]] = []
    stop = asyncio.Event()
    changed = asyncio.Event()

    async def on_change(paths: list[str]) -> None:
        calls.append(paths)
        changed.set()

    async def until_reported(name: str) -> None:
        for _ in range(200):
            (tmp_path / name).write_text("x")
            try:
                await asyncio.wait_for(changed.wait(), 0.25)
            except asyncio.TimeoutError:
                continue
            changed.clear()
            if any(p.endswith("/" + name) for call in calls for p in call):
                return
        raise AssertionError(f"the watch never reported {name}")

    task = asyncio.create_task(watch(lambda: folders([str(tmp_path)]), on_change, stop))
    await until_reported("probe.yaml")
    calls.clear()
    await action()
    await until_reported("sentinel.yaml")
    stop.set()
    await asyncio.wait_for(task, 5)
    seen = [[p for p in call if not p.endswith("/sentinel.yaml")] for call in calls]
    return [call for call in seen if call]


async def test_a_burst_of_saves_is_one_change(tmp_path):
    async def burst() -> None:
        for i in range(5):
            (tmp_path / f"agent-{i}.yaml").write_text(f"name: a{i}\n")
            (tmp_path / "code.py").write_text(f"X = {i}\n")
            await asyncio.sleep(0.01)

    calls = await run_watch(tmp_path, burst)
    assert len(calls) == 1
    assert sorted(p.rsplit("/", 1)[1] for p in calls[0]) == ["agent-0.yaml", "agent-1.yaml", "agent-2.yaml",
                                                               "agent-3.yaml", "agent-4.yaml", "code.py"]


async def test_editor_leftovers_and_other_files_are_ignored(tmp_path):
    async def leftovers() -> None:
        for name in (".agent.yaml.swp", "agent.yaml~", ".#agent.yaml", "notes.txt", "4913", "code.pyc"):
            (tmp_path / name).write_text("x")

    assert await run_watch(tmp_path, leftovers) == []


def test_folders_of_files_and_folders(tmp_path):
    (tmp_path / "a.yaml").write_text("")
    sub = tmp_path / "sub"
    sub.mkdir()
    assert folders([str(tmp_path / "a.yaml"), str(sub), str(tmp_path / "missing" / "x.py")]) == {
        str(tmp_path.resolve()), str(sub.resolve())}


async def test_the_watch_follows_new_folders(tmp_path):
    first, second = tmp_path / "agents", tmp_path / "code"
    first.mkdir()
    second.mkdir()
    watched = {str(first)}
    calls: list[list[str]] = []
    stop = asyncio.Event()

    async def on_change(paths: list[str]) -> None:
        calls.append(paths)
        watched.add(str(second))  # as when a reload adds an agent whose code lives elsewhere

    task = asyncio.create_task(watch(lambda: frozenset(watched), on_change, stop))
    await asyncio.sleep(0.3)
    (first / "new.yaml").write_text("name: new\n")
    for _ in range(50):
        if calls:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # the watch starts over on both folders
    (second / "code.py").write_text("X = 1\n")
    for _ in range(100):
        if len(calls) >= 2:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert [[p.rsplit("/", 1)[1] for p in c] for c in calls] == [["new.yaml"], ["code.py"]]
