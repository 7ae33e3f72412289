"""Imported by the fork server: load the rtc library's native code once, before any process is forked.

Loaded in each job process instead (the rtc client loads it when it starts), the 28 MB library's relocated
data would be private to every process (about 0.8 MB each) and the load would cost each start a few ms.
A load (dlopen) starts no thread; the library's runtime still starts in each process (threads do not
survive a fork).
"""

from livekit.rtc._ffi_client import get_ffi_lib

library = get_ffi_lib()  # the rtc client's own load of it finds it loaded
