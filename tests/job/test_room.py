"""The room policy at a job's end: which ends leave the room to another job, and deleting it."""

from __future__ import annotations

from dataclasses import replace

from livekit import api

from host.config.definitions import Recovery
from host.config.loader import load
from host.job.room import delete_room, taken_over


def definition(tmp_path):
    (tmp_path / "a.yaml").write_text("name: a\nentrypoint: m:f\n")
    return load([str(tmp_path)], check_imports=False).require_ok().agents[0]


def test_a_call_another_job_takes_over_keeps_its_room(tmp_path):
    d = definition(tmp_path)
    assert taken_over(d, "taken_over") and taken_over(d, "host_gone")
    assert not taken_over(replace(d, recovery=Recovery(on_host_loss="off")), "host_gone")  # nobody will take it
    assert not any(taken_over(d, r) for r in ("participants_left", "host_draining", "entrypoint_failed"))
    # shut down at its memory limit: its call keeps its room only when it is given the agent again
    assert not taken_over(d, "memory_limit")
    assert taken_over(replace(d, recovery=Recovery(on_crash="redispatch")), "memory_limit")


class Rooms:
    def __init__(self, error: Exception | None) -> None:
        self.error, self.asked = error, []

    async def delete_room(self, request):
        self.asked.append(request.room)
        if self.error is not None:
            raise self.error


class Client:
    def __init__(self, error: Exception | None = None) -> None:
        self.room = Rooms(error)


async def test_deleting_the_room_reports_only_real_failures():
    ok = Client()
    assert await delete_room(ok, "r1") is None and ok.room.asked == ["r1"]
    gone = Client(api.TwirpError(api.TwirpErrorCode.NOT_FOUND, "room not found", status=404))
    assert await delete_room(gone, "r1") is None  # someone deleted it first: what the policy wanted
    refused = Client(api.TwirpError(api.TwirpErrorCode.PERMISSION_DENIED, "no", status=403))
    assert (await delete_room(refused, "r1")).startswith("deleting the room failed")
    broken = Client(OSError("connection refused"))
    assert await delete_room(broken, "r1") == "deleting the room failed: connection refused"
