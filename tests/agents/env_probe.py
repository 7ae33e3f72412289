"""Test agent: says what its process's environment holds, on topic "env"."""

import json
import os

from host.context import JobContext


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    with open(f"/proc/{os.getpid()}/environ", "rb") as fh:
        initial = fh.read().decode(errors="replace")
    seen = {"os_environ": sorted(os.environ), "initial_has_secret": "LIVEKIT_API_SECRET" in initial,
            "secret_value_anywhere": ctx._credentials.api_secret in initial + json.dumps(dict(os.environ)),
            "own": os.environ.get("OWN"), "shared": os.environ.get("SHARED_TOKEN"),
            "initial_keys": sorted(entry.split("=", 1)[0] for entry in initial.split("\0") if entry)}
    await ctx.room.local_participant.send_text(json.dumps(seen), topic="env")
