"""The rtc library's native code: loaded once by the fork server, its runtime started in each process.

Importing this module loads the library (dlopen). The fork server imports it before any process is forked:
loaded in each job process instead (the rtc client loads it when it starts), the 28 MB library's relocated
data would be private to every process (about 0.8 MB each) and the load would cost each start a few ms. A
load starts no thread; the library's runtime (`start_runtime`) still starts in each process, as threads do
not survive a fork.

The rtc client loads the library again in each process, when its client starts (`get_ffi_lib`: resolving its
path, building a new ctypes handle with its own function objects), which cost each job process about 0.5 MB
of private memory (measured by hand). Here, its `get_ffi_lib` answers with the library loaded in the fork
server, its functions already looked up, unless LIVEKIT_LIB_PATH names another library since (an agent's
`env`, say), which it then loads as before.

The rtc client asks the library to hand every log record it makes to Python, where the client drops all but
warnings and errors (debug ones too unless LIVEKIT_RTC_DEBUG is set). A connected room makes thousands of
records a second, each handed over on its own: entering Python from one of the library's threads, decoding
it, dropping it (`bench/rtc_logs_bench.py` measures what that costs idle rooms).
`start_runtime` has the library keep its records instead and print only what RUST_LOG asks for, warnings and
errors by default, on standard error in its own format. With LIVEKIT_RTC_DEBUG set, the records go to Python
as the rtc client has them do (to the `livekit` logger).

The library's runtime would also start a worker thread per core in every process; a job process serves one
room, and gets two of them (TOKIO_WORKER_THREADS, when set, still decides).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
from collections.abc import Iterator

from livekit.rtc import _ffi_client

from host.logs import rtc_logs_to_python

_load_library = _ffi_client.get_ffi_lib
_LOADED_FROM = os.environ.get("LIVEKIT_LIB_PATH", "").strip()  # as the rtc client reads it
library = _load_library()
for _name in ("livekit_ffi_initialize", "livekit_ffi_request", "livekit_ffi_drop_handle", "livekit_ffi_dispose"):
    getattr(library, _name, None)  # the functions the rtc client calls: each first look makes an object


def loaded_library() -> ctypes.CDLL:
    """The rtc client's `get_ffi_lib`: the library loaded here, unless LIVEKIT_LIB_PATH names another since."""
    if os.environ.get("LIVEKIT_LIB_PATH", "").strip() != _LOADED_FROM:
        return _load_library()
    return library


_ffi_client.get_ffi_lib = loaded_library

logger = logging.getLogger("agenthost.process")

RUNTIME_DEFAULTS = {
    "RUST_LOG": "warn",  # what the library prints itself
    "TOKIO_WORKER_THREADS": "2",  # its runtime's worker threads
}


def start_runtime() -> None:
    """Start the rtc library's runtime (its threads) in this process, its logs kept native unless
    `host.logs.rtc_logs_to_python`. Idempotent."""
    from livekit import rtc
    from livekit.rtc import _ffi_client

    with _runtime_settings():
        client = _ffi_client.FfiClient.instance  # the first access starts it, with records sent to Python
    if rtc_logs_to_python(os.environ):
        return
    try:  # set up again, keeping them: the library's setup only replaces its settings
        client._ffi_lib.livekit_ffi_initialize(_ffi_client.ffi_event_callback, False, b"python",
                                               rtc.__version__.encode("ascii"))
    except (AttributeError, TypeError) as exc:  # another rtc client than the one this was written for
        logger.debug("the rtc library's logs go to Python (%s)", exc)


@contextlib.contextmanager
def _runtime_settings() -> Iterator[None]:
    """The environment the library reads when its runtime starts: RUNTIME_DEFAULTS where the process's own
    environment does not say, and only then (the processes a job starts do not inherit them)."""
    added = [name for name in RUNTIME_DEFAULTS if name not in os.environ]
    for name in added:
        os.environ[name] = RUNTIME_DEFAULTS[name]
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)
