"""The demo behind scripts/demo.sh; run inside a fresh network namespace."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from host.testing.harness import Client, dispatch, private_server

ROOT = Path(__file__).resolve().parent.parent



async def main() -> int:
    server = private_server("demo")
    print(f"demo: livekit-server on {server.url}; starting agenthost run agents.d", flush=True)
    host = subprocess.Popen([sys.executable, "-m", "host", "run", "agents.d"], cwd=ROOT,
                            env={**os.environ, **server.env()})
    try:
        await asyncio.sleep(3)
        client = Client(server, "demo-room", identity="demo-user")
        client.listen("hello-world")
        await client.connect()
        print("demo: dispatching hello-world to demo-room", flush=True)
        await dispatch(server, "hello-world", "demo-room")
        texts = await client.wait_text("hello-world")
        print(f"demo: demo-user received {texts[0]!r} on topic 'hello-world'", flush=True)
        print("demo: agenthost status (the host's /status, while the job runs):", flush=True)
        shown = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "host", "status"], cwd=ROOT,
                                        capture_output=True, text=True, timeout=30, check=False)
        print(shown.stdout + shown.stderr, end="", flush=True)
        await client.disconnect()
        await asyncio.sleep(2)
        return 0
    finally:
        host.terminate()
        deadline = time.monotonic() + 30
        while host.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if host.poll() is None:
            host.kill()
        server.stop()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
