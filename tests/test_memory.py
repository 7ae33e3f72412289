"""A process's own pages (host.memory): read by the host, or by the process itself where the host may not."""

from __future__ import annotations

import ctypes
import os

import pytest

from host.memory import own_pages


def test_a_process_reads_its_own_pages():
    held = bytearray(32 * 1024 * 1024)  # written: its own pages
    for i in range(0, len(held), 4096):
        held[i] = 1
    own = own_pages()
    assert own is not None and own >= 32 * 1024 * 1024
    assert own_pages(os.getpid()) is not None and own_pages(2**22 + 12345) is None


def become_nobody() -> None:
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)


@pytest.mark.skipif(os.geteuid() != 0, reason="run as root, to become a user")
def test_a_user_cannot_read_a_non_dumpable_process_of_its_own_but_the_process_can():
    """Why a job of a host run as a user says its own pages: the host, that user too, may not read them."""
    figure_r, figure_w = os.pipe()  # the child's own figure
    release_r, release_w = os.pipe()  # the child may go
    child = os.fork()
    if child == 0:
        try:
            become_nobody()
            ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0, as a job process is
            os.write(figure_w, str(own_pages()).encode())
            os.read(release_r, 1)  # until the other user looked
        finally:
            os._exit(0)
    os.close(figure_w)  # the child's only: a child that failed before writing ends the read, not the test
    os.close(release_r)
    try:
        said = os.read(figure_r, 64)
        looker = os.fork()
        if looker == 0:
            try:
                become_nobody()
                os._exit(0 if own_pages(child) is None else 1)
            finally:
                os._exit(2)
        assert os.waitstatus_to_exitcode(os.waitpid(looker, 0)[1]) == 0  # the same user could not read them
        assert said.isdigit() and int(said) > 0, said  # the process itself could
    finally:
        os.write(release_w, b"x")
        os.waitpid(child, 0)
