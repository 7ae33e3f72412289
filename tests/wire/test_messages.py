"""The messages a template sends, packed by hand (once per job process) or encoded, read back as the host
reads them."""

import os
from multiprocessing import Pipe

import pytest

from host.job.template_main import read_exactly
from host.wire.messages import (
    FORK,
    REQUEST_FRAME,
    Exited,
    Forked,
    ForkFailed,
    TemplateReady,
    pack_exited,
    pack_forked,
)
from host.wire.protocol import decode_template, encode


def test_packed_and_encoded_template_messages_read_back_in_order():
    template_end, host_end = Pipe()
    os.write(template_end.fileno(), pack_forked(4_194_303))
    template_end.send_bytes(encode(ForkFailed("no descriptors")))
    os.write(template_end.fileno(), pack_exited(12, -9))
    template_end.send_bytes(encode(TemplateReady(7, {"/a.py": (1, 2)})))
    os.write(template_end.fileno(), pack_exited(13, 3))
    assert [decode_template(host_end.recv_bytes()) for _ in range(5)] == [
        Forked(4_194_303), ForkFailed("no descriptors"), Exited(12, -9), TemplateReady(7, {"/a.py": (1, 2)}),
        Exited(13, 3)]


def test_a_request_is_read_whole_even_when_it_arrives_in_pieces():
    host_end, template_end = Pipe()
    host_end.send_bytes(FORK)
    framed = os.read(template_end.fileno(), REQUEST_FRAME)
    assert framed[4:] == FORK
    reader, writer = os.pipe()
    os.write(writer, framed[:2])
    os.write(writer, framed[2:])
    assert read_exactly(reader, REQUEST_FRAME) == framed
    os.write(writer, framed[:3])
    os.close(writer)
    with pytest.raises(EOFError):
        read_exactly(reader, REQUEST_FRAME)
