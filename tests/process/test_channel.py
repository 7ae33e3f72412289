"""The host's end of a process's pipe: whole messages in order, bounded frames, a deadline for a begun frame,
descriptors that come with a message, and writes that never block the host's loop."""

import asyncio
import os
import socket
from multiprocessing import reduction

import pytest

from host.process import channel as channel_module
from host.process.channel import Channel
from host.wire.messages import Exited, Forked, JobDone, JobStarted, pack_exited, pack_forked
from host.wire.protocol import HEADER, MAX_FRAME, decode_job, decode_template, encode, fds_after, frame


class Owner:
    def __init__(self) -> None:
        self.messages: list[tuple[object, tuple[int, ...]]] = []
        self.ended: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self.changed = asyncio.Event()
        self.ends: list[str | None] = []

    def on_message(self, msg, fds):
        self.messages.append((msg, fds))
        self.changed.set()

    def on_end(self, violation):
        self.ends.append(violation)
        if not self.ended.done():
            self.ended.set_result(violation)

    async def wait_for(self, count: int) -> None:
        while len(self.messages) < count:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 10)


def channel(owner: Owner, decode=decode_job, fds_per_message=None) -> tuple[Channel, socket.socket]:
    host_end, process_end = socket.socketpair()
    ch = Channel(host_end.detach(), decode, owner.on_message, owner.on_end, fds_per_message=fds_per_message)
    ch.start()
    return ch, process_end


async def test_messages_arrive_whole_and_in_order_however_they_are_split():
    owner = Owner()
    ch, process = channel(owner)
    data = frame(encode(JobStarted(1.0))) + frame(encode(JobDone(None))) + frame(encode(JobDone("e")))
    for i in range(0, len(data), 7):  # in pieces that cut headers and payloads
        process.sendall(data[i:i + 7])
        await asyncio.sleep(0)
    await owner.wait_for(3)
    assert [m for m, _ in owner.messages] == [JobStarted(1.0), JobDone(None), JobDone("e")]
    process.close()
    assert await asyncio.wait_for(owner.ended, 10) is None  # the end of the stream, not a violation
    ch.close()


async def test_a_frame_longer_than_the_bound_ends_the_channel_with_the_reason():
    owner = Owner()
    ch, process = channel(owner)
    process.sendall(HEADER.pack(1024 * 1024 * 1024) + b"x" * 10)
    assert await asyncio.wait_for(owner.ended, 10) == f"a frame of 1073741824 bytes (at most {MAX_FRAME})"
    assert owner.messages == []
    ch.close()
    process.close()


async def test_a_negative_frame_length_ends_the_channel():
    owner = Owner()
    ch, process = channel(owner)
    process.sendall(HEADER.pack(-1) + b"\0" * 8)  # multiprocessing's header of a frame over 2 GB
    assert await asyncio.wait_for(owner.ended, 10) == f"a frame of -1 bytes (at most {MAX_FRAME})"
    ch.close()
    process.close()


async def test_a_frame_begun_and_never_ended_is_a_violation_at_its_deadline(monkeypatch):
    monkeypatch.setattr(channel_module, "FRAME_DEADLINE", 0.2)
    owner = Owner()
    ch, process = channel(owner)
    process.sendall(HEADER.pack(1000) + b"0123456789")  # announces 1,000 bytes, sends 10
    assert await asyncio.wait_for(owner.ended, 10) == "a frame begun 0.2 s ago did not end (14 bytes of it came)"
    ch.close()
    process.close()


async def test_garbage_ends_the_channel_once():
    owner = Owner()
    ch, process = channel(owner)
    process.sendall(frame(b"\x80\x04garbage") * 3000)
    assert (await asyncio.wait_for(owner.ended, 10)).startswith("not a message")
    process.sendall(frame(b"more garbage"))
    ch.read_available()  # reading stopped at the first: nothing more is read or said
    assert len(owner.ends) == 1
    ch.close()
    process.close()


async def test_frames_that_each_end_are_not_cut_by_the_deadline(monkeypatch):
    monkeypatch.setattr(channel_module, "FRAME_DEADLINE", 0.3)
    owner = Owner()
    ch, process = channel(owner)
    whole = frame(encode(JobStarted(1.0)))
    for i in range(8):  # 0.8 s of frames, each split over two reads 0.1 s apart
        process.sendall(whole[:5])
        await asyncio.sleep(0.05)
        process.sendall(whole[5:])
        await owner.wait_for(i + 1)
        await asyncio.sleep(0.05)
    assert owner.ends == []
    ch.close()
    process.close()


async def test_descriptors_on_a_channel_that_takes_none_end_it():
    owner = Owner()
    ch, process = channel(owner)
    reader, writer = os.pipe()
    reduction.sendfds(process, [reader])
    assert await asyncio.wait_for(owner.ended, 10) == "1 descriptors sent with no message to carry them"
    ch.close()  # and closes what it was sent
    for fd in (reader, writer):
        os.close(fd)
    process.close()


async def test_descriptors_come_with_the_message_they_follow():
    owner = Owner()
    ch, process = channel(owner, decode=decode_template, fds_per_message=fds_after)
    reader, writer = os.pipe()
    process.sendall(pack_forked(41))
    for _ in range(1000):  # the message alone first, read: its descriptors come in a later read
        if ch._awaiting_fds is not None:
            break
        await asyncio.sleep(0.01)
    assert ch._awaiting_fds == Forked(41)
    reduction.sendfds(process, [reader, writer])
    process.sendall(pack_exited(41, 0))
    await owner.wait_for(2)
    (forked, fds), (exited, none) = owner.messages
    assert forked == Forked(41) and exited == Exited(41, 0) and none == ()
    os.write(fds[1], b"through the passed pipe")
    assert os.read(fds[0], 100) == b"through the passed pipe"
    for fd in (*fds, reader, writer):
        os.close(fd)
    ch.close()
    process.close()


async def test_a_write_to_a_process_that_does_not_read_never_blocks():
    owner = Owner()
    ch, process = channel(owner)
    big = frame(b"m" * (8 * 1024 * 1024))  # far more than a socket buffer holds
    ch.send(big)  # returns at once: what the socket does not take waits in the channel
    received = bytearray()
    process.setblocking(False)
    while len(received) < len(big):
        try:
            received += process.recv(1 << 20)
        except BlockingIOError:
            await asyncio.sleep(0.001)  # the loop runs the channel's writer meanwhile
    assert bytes(received) == big
    ch.close()
    process.close()


async def test_a_write_to_a_process_gone_raises():
    owner = Owner()
    ch, process = channel(owner)
    process.close()
    with pytest.raises(OSError):
        for _ in range(100):
            ch.send(frame(b"x" * 65536))
            await asyncio.sleep(0)
    ch.close()


async def test_a_flood_of_valid_messages_ends_the_channel_within_its_second(monkeypatch):
    """Each message costs the host's loop its decoding: a process sending more than a second's bound of them
    breaks the protocol, however valid each one is."""
    from host.wire.messages import JobVitals

    monkeypatch.setattr(channel_module, "MAX_MESSAGES_PER_SECOND", 50)
    owner = Owner()
    ch, process = channel(owner)
    process.sendall(frame(encode(JobVitals(1.0, 1))) * 200)
    assert await asyncio.wait_for(owner.ended, 10) == "more than 50 messages in a second"
    assert len(owner.messages) == 50
    ch.close()
    process.close()
