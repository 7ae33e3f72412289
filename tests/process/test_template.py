"""Agents' template processes, spawned for real: one import of the agent's code, job processes forked from it."""

from __future__ import annotations

import asyncio
import os
import resource
import signal

import psutil
import pytest

from host.config.loader import load
from host.process.errors import ProcessStartError
from host.process.pool import ProcessPool
from host.process.priority import PRIORITY_BOOST
from host.process.states import ProcessState
from host.process.template import EXIT_UNKNOWN


async def ready(pool: ProcessPool):
    """A process from the pool, once it is ready (a fresh one is handed out as soon as it is started)."""
    proc = await pool.take()
    await proc.wait_ready(30)
    return proc

def agent(tmp_path, module_body: str = ""):
    """An agent whose module logs each import of it (the importing pid) to imports.log."""
    (tmp_path / "mod.py").write_text(
        "import os\n"
        f"with open({str(tmp_path / 'imports.log')!r}, 'a') as fh:\n"
        "    fh.write(f'{os.getpid()}\\n')\n"
        f"{module_body}\n"
        "async def entrypoint(ctx): pass\n\n"
        "def prewarm(proc):\n    proc.userdata['setup_pid'] = os.getpid()\n")
    (tmp_path / "a.yaml").write_text("name: a\nentrypoint: mod.py:entrypoint\nsetup: mod.py:prewarm\n"
                                     "processes: {idle: 0, init_timeout: 10s}\n")
    return load([str(tmp_path)], check_imports=False).require_ok().agents[0]


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for its parent counts)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def imports(tmp_path) -> list[int]:
    return [int(line) for line in (tmp_path / "imports.log").read_text().split()]


async def test_job_processes_are_forked_from_one_template_that_imported_the_code_once(tmp_path):
    pool = ProcessPool(agent(tmp_path), "text", 20)
    try:
        procs = await asyncio.gather(*(ready(pool) for _ in range(3)))
        template = pool.template_pid
        assert template is not None
        assert imports(tmp_path) == [template], "only the template imported the agent's module"
        assert {psutil.Process(p.pid).ppid() for p in procs} == {template}
        assert all(p.state is ProcessState.IDLE for p in procs)
        assert str(tmp_path / "mod.py") in pool.sources, "the template's imports count as the pool's code"
        for p in procs:
            p.kill()
        ends = await asyncio.gather(*(p.wait_exit(5) for p in procs))
        assert [e.code for e in ends] == [-signal.SIGKILL] * 3, "each exit code is the template's report"
    finally:
        await pool.close()
    assert gone(template)


async def test_code_that_starts_a_thread_at_import_is_not_forked_from_a_template(tmp_path, caplog):
    body = "import threading, time\nthreading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
    pool = ProcessPool(agent(tmp_path, body), "text", 20)
    try:
        procs = [await ready(pool), await ready(pool)]
        assert pool.template_pid is None
        assert "start without a template" in caplog.text and "started threads" in caplog.text
        assert sorted(imports(tmp_path)) != [], "the template tried"
        assert {p.pid for p in procs} <= set(imports(tmp_path)), "each process imported the code itself"
        for p in procs:
            p.kill()
        await asyncio.gather(*(p.wait_exit(5) for p in procs))
    finally:
        await pool.close()


async def test_a_process_outlives_its_killed_template_and_the_next_start_gets_a_new_one(tmp_path):
    pool = ProcessPool(agent(tmp_path), "text", 20)
    try:
        running = await ready(pool)
        first = pool.template_pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        for _ in range(100):
            if pool.template_pid is None:
                break
            await asyncio.sleep(0.05)
        assert pool.template_pid is None, "the host saw the template die"
        assert psutil.pid_exists(running.pid) and not running.exited, "its process runs on"
        second = await ready(pool)
        assert pool.template_pid not in (None, first)
        assert psutil.Process(second.pid).ppid() == pool.template_pid
        running.kill()
        end = await running.wait_exit(5)
        assert end.code == EXIT_UNKNOWN, "seen exit by its pidfd; its code died with the template"
        second.kill()
        await second.wait_exit(5)
    finally:
        await pool.close()


async def test_a_closed_pool_s_template_waits_for_its_running_process_then_exits(tmp_path):
    pool = ProcessPool(agent(tmp_path), "text", 20)
    proc = await ready(pool)
    template = pool.template_pid
    assert template is not None
    await pool.close()  # a reload: new code gets a new pool, a job on the old code runs on
    assert psutil.Process(template).status() != psutil.STATUS_ZOMBIE, "it still reaps the running process"
    assert not proc.exited
    proc.kill()
    end = await proc.wait_exit(5)
    assert end.code == -signal.SIGKILL, "reported by the retired template"
    for _ in range(100):
        if gone(template):
            break
        await asyncio.sleep(0.05)
    assert gone(template)


async def test_a_template_that_cannot_fork_makes_a_clear_start_error(tmp_path):
    # the template (and only it: the module is imported there) runs out of file descriptors: every number below
    # `top` in use, and a limit that leaves three: the template's epoll, the socket it sends descriptors on,
    # and one short of a pipe's two
    body = ("import resource\ntop = max(int(f) for f in os.listdir('/proc/self/fd'))\nheld = []\n"
            "while (fd := os.open(os.devnull, os.O_RDONLY)) < top:\n    held.append(fd)\nos.close(fd)\n"
            "resource.setrlimit(resource.RLIMIT_NOFILE, (top + 3, top + 3))\n")
    pool = ProcessPool(agent(tmp_path, body), "text", 20)
    try:
        with pytest.raises(ProcessStartError, match=r"cannot fork a job process: .*Too many open files"):
            await ready(pool)
        assert pool.last_error is not None and "Too many open files" in pool.last_error
    finally:
        await pool.close()


async def test_an_import_error_in_the_template_is_the_start_error(tmp_path):
    pool = ProcessPool(agent(tmp_path, "raise RuntimeError('no config')"), "text", 20)
    try:
        with pytest.raises(ProcessStartError, match=r"RuntimeError: no config"):
            await ready(pool)
    finally:
        await pool.close()


async def test_a_process_taken_after_a_reload_closed_the_pool_still_starts(tmp_path):
    pool = ProcessPool(agent(tmp_path), "text", 20)
    first = await ready(pool)
    template = pool.template_pid
    await pool.close()  # the reload; an offer accepted just before it takes its process now
    late = await ready(pool)
    assert late.state is ProcessState.IDLE
    assert psutil.Process(late.pid).ppid() != template, "from the fork server: the retired template forks no more"
    for p in (first, late):
        p.kill()
    await asyncio.gather(*(p.wait_exit(5) for p in (first, late)))


async def test_code_that_opens_a_connection_at_import_is_not_forked_from_a_template(tmp_path, caplog):
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    body = f"import socket\nconnection = socket.create_connection(('127.0.0.1', {port}))\n"
    pool = ProcessPool(agent(tmp_path, body), "text", 20)
    try:
        proc = await ready(pool)
        assert pool.template_pid is None
        assert "opened a network connection" in caplog.text
        assert proc.pid in imports(tmp_path), "the process imported the code (and opened its connection) itself"
        proc.kill()
        await proc.wait_exit(5)
    finally:
        await pool.close()
        listener.close()


async def test_the_template_runs_above_its_job_processes_which_run_as_the_host_does(tmp_path):
    pool = ProcessPool(agent(tmp_path), "text", 20)
    try:
        proc = await ready(pool)
        template = pool.template_pid
        assert template is not None
        host = os.getpriority(os.PRIO_PROCESS, 0)
        allowed = os.geteuid() == 0 or 20 - resource.getrlimit(resource.RLIMIT_NICE)[0] <= host - PRIORITY_BOOST
        assert psutil.Process(template).nice() == (host - PRIORITY_BOOST if allowed else host)
        assert psutil.Process(proc.pid).nice() == host, "setup and the job run at the host's priority"
        proc.kill()
        await proc.wait_exit(5)
    finally:
        await pool.close()


@pytest.fixture
def cgroups():
    from host.process.cgroupfs import CgroupError
    from host.process.detect import detect

    try:
        found = detect("cgroup")
    except CgroupError as exc:
        pytest.skip(f"this machine lets no cgroup be created: {exc}")
    yield found
    found.close()


async def test_what_a_template_imports_is_bounded_and_ended_with_it(tmp_path, cgroups, caplog):
    """In cgroup mode the template is in a group of its own under its agent's limits before it imports
    anything: a process its agent's code starts at import ends with the template; its job processes do not."""
    definition = agent(tmp_path, "import subprocess\n"
                                 f"open({str(tmp_path / 'left')!r}, 'w').write(str(subprocess.Popen("
                                 "['sleep', '600'], start_new_session=True).pid))\n")
    pool = ProcessPool(definition, "text", 20, confinement=cgroups)
    proc = await ready(pool)
    template = pool.templates.current
    assert template is not None and template.group is not None
    assert template.pid in template.group.pids() and proc.pid not in template.group.pids()
    left = int((tmp_path / "left").read_text())
    assert left in template.group.pids()
    await pool.close()
    proc.kill()
    await proc.wait_exit(10)
    await template.wait_exit(10)
    for _ in range(200):  # killed when the template's exit was seen: gone once the kernel has delivered it
        if gone(left):
            break
        await asyncio.sleep(0.05)
    assert gone(left), "what the template started at import ended with it"
    assert f"left in the template's cgroup: {left}" in caplog.text, "and it is said"


async def test_what_a_template_starts_at_import_stops_at_its_agents_pids_limit(tmp_path, cgroups):
    (tmp_path / "mod.py").write_text("import subprocess\n"
                                     "left = [subprocess.Popen(['sleep', '600']) for _ in range(40)]\n"
                                     "async def entrypoint(ctx): pass\n")
    (tmp_path / "a.yaml").write_text("name: a\nentrypoint: mod.py:entrypoint\nlimits: {pids_limit: 8}\n"
                                     "processes: {idle: 0, init_timeout: 20s}\n")
    definition = load([str(tmp_path)], check_imports=False).require_ok().agents[0]
    pool = ProcessPool(definition, "text", 20, confinement=cgroups)
    with pytest.raises(ProcessStartError, match=r"Resource temporarily unavailable"):
        await ready(pool)
    await pool.close()
