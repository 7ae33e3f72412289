"""The rtc library's runtime as job processes start it: its log records kept native unless LIVEKIT_RTC_DEBUG, and
its settings given only while it starts. The real library runs in a subprocess (its runtime is one per process)."""

import os
import re
import subprocess
import sys
import types

from host.job import native

# In a fresh process: start the runtime as a job process does, with a handler on the rtc client's logger; then
# connect a room to a closed local port, which the library logs (it tries, retries, gives up), and say how many
# of those records reached Python.
PROBE = """
import asyncio, logging, os, socket, time
records = []
handler = logging.Handler()
handler.emit = lambda r: records.append(r.getMessage())
logging.getLogger("livekit").addHandler(handler)
logging.getLogger("livekit").setLevel(logging.DEBUG)
from host.job import native
native.start_runtime()
native.start_runtime()  # idempotent: the library is set up again, no second runtime
from livekit import rtc
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]  # closed once this block ends
async def connect():
    try:
        await rtc.Room().connect(f"ws://127.0.0.1:{port}", "no-token")
    except Exception as exc:
        print("refused:", type(exc).__name__)
asyncio.run(connect())
time.sleep(1.5)  # the library hands records to Python at least once a second
print("python:", sum(f"127.0.0.1:{port}" in m for m in records))
print("environment after:", os.environ.get("RUST_LOG"), os.environ.get("TOKIO_WORKER_THREADS"))
"""


def run_probe(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("RUST_LOG", "TOKIO_WORKER_THREADS", "LIVEKIT_RTC_DEBUG")}
    return subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True,
                          timeout=60, check=True)


def test_the_library_keeps_its_records_and_prints_what_rust_log_asks():
    out = run_probe(RUST_LOG="info")
    assert "refused:" in out.stdout, out
    # printed by the library itself, in its own format: the attempt (info) and its failures (warnings)
    assert re.search(r"INFO +livekit.*connecting to ws://127\.0\.0\.1:\d+", out.stderr), out.stderr
    assert re.search(r"WARN +livekit", out.stderr), out.stderr
    assert "python: 0" in out.stdout, out  # none of them handed to Python
    assert "environment after: info None" in out.stdout  # the user's RUST_LOG stays; the default is not left


def test_by_default_it_prints_warnings_only():
    out = run_probe()
    assert "refused:" in out.stdout, out
    assert re.search(r"WARN +livekit", out.stderr) and not re.search(r"INFO +livekit", out.stderr), out.stderr
    assert "environment after: None None" in out.stdout


def test_with_livekit_rtc_debug_the_records_go_to_python():
    out = run_probe(RUST_LOG="info", LIVEKIT_RTC_DEBUG="1")
    assert "refused:" in out.stdout, out
    assert re.search(r"python: [1-9]", out.stdout), out  # the rtc client's logger has them
    assert "connecting to" not in out.stderr  # and the library printed none itself


def test_the_defaults_are_set_while_the_runtime_starts_only(monkeypatch):
    seen = {}
    setups = []

    class Client:
        _ffi_lib = types.SimpleNamespace(livekit_ffi_initialize=lambda *args: setups.append(args[1]))

    class Factory:
        @property
        def instance(self):
            seen.update({k: os.environ.get(k) for k in native.RUNTIME_DEFAULTS})
            return Client()

    from livekit.rtc import _ffi_client

    monkeypatch.setattr(_ffi_client, "FfiClient", Factory())
    monkeypatch.delenv("RUST_LOG", raising=False)
    monkeypatch.setenv("TOKIO_WORKER_THREADS", "8")
    monkeypatch.delenv("LIVEKIT_RTC_DEBUG", raising=False)
    native.start_runtime()
    assert seen == {"RUST_LOG": "warn", "TOKIO_WORKER_THREADS": "8"}  # the user's setting wins
    assert "RUST_LOG" not in os.environ and os.environ["TOKIO_WORKER_THREADS"] == "8"
    assert setups == [False]  # set up again, keeping its records
    monkeypatch.setenv("LIVEKIT_RTC_DEBUG", "true")
    native.start_runtime()
    assert setups == [False]



def test_the_rtc_client_is_given_the_library_loaded_once_unless_its_path_changed(monkeypatch):
    from livekit.rtc import _ffi_client

    assert _ffi_client.get_ffi_lib() is native.library  # loaded by the fork server, shared by every job process
    monkeypatch.setenv("LIVEKIT_LIB_PATH", native.library._name)  # another library named (an agent's env)
    other = _ffi_client.get_ffi_lib()
    assert other is not native.library
    assert other._name == native.library._name
