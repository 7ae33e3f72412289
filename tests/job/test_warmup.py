"""The template's warm-up leaves nothing behind that a fork would share: no thread, no descriptor, no event loop."""

import subprocess
import sys

from host.job import warmup

# in a fresh interpreter, as a template is: no event loop has run there yet
FRESH = """
import asyncio, os, threading, warnings
warnings.simplefilter("error")  # a loop, socket or task left unclosed would warn
from host.job import warmup
before = set(os.listdir("/proc/self/fd"))
warmup.warm_up()
after = set(os.listdir("/proc/self/fd"))
print("threads", threading.active_count(), "new descriptors", sorted(after - before))
try:
    asyncio.get_running_loop()
    print("a loop is running")
except RuntimeError:
    print("no loop running")
"""


def test_warm_up_leaves_no_thread_descriptor_or_loop():
    out = subprocess.run([sys.executable, "-c", FRESH], capture_output=True, text=True, timeout=60, check=True)
    assert "threads 1 new descriptors []" in out.stdout, out
    assert "no loop running" in out.stdout and out.stderr == "", out


SPECIALIZED = """
import dis
from asyncio import base_events
from host.job import warmup

def specialized(code):  # instructions CPython rewrote for what it met (their adaptive name is not the original)
    return sum(1 for i in dis.get_instructions(code, adaptive=True) if i.opname not in dis.opmap)

code = base_events.BaseEventLoop._run_once.__code__
before = specialized(code)
assert warmup.warm_up()
print(before, specialized(code))
"""


def test_warm_up_specializes_the_event_loops_code_before_the_fork():
    out = subprocess.run([sys.executable, "-c", SPECIALIZED], capture_output=True, text=True, timeout=60, check=True)
    before, after = map(int, out.stdout.split())
    assert before == 0 and after > 20, out.stdout  # what each forked job would otherwise write on its own pages


def test_warm_up_runs_the_log_handlers_without_writing(capsys):
    import logging

    from host import logs

    root = logging.getLogger()
    saved = root.handlers[:]
    try:
        job = logs.JobFields({"agent": "a"})
        logs.setup("text", logging.INFO, job)
        warmup.warm_up()
    finally:
        root.handlers[:] = saved
    assert capsys.readouterr().err == ""  # formatted, filtered, never emitted
