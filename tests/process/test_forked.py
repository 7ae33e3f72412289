"""A template's Forked message, believed only as its pidfd and pipe say."""

import os
import socket

from host.process.forked import forked_mismatch


def test_a_forked_message_is_believed_only_as_its_pidfd_and_pipe_say():
    pidfd = os.pidfd_open(os.getpid())
    ours, theirs = socket.socketpair()
    reader, writer = os.pipe()
    me, parent = os.getpid(), os.getppid()
    try:
        assert forked_mismatch(me, ours.fileno(), pidfd, parent) is None
        assert forked_mismatch(1, ours.fileno(), pidfd, parent) == f"a Forked process 1 whose pidfd names {me}"
        assert forked_mismatch(me, reader, pidfd, parent) == f"a Forked process {me} whose pipe is not a socket"
        assert forked_mismatch(me, ours.fileno(), reader, parent) == (
            f"a Forked process {me} whose pidfd names no process")
        # a true pidfd of a process that is not the template's own child (the host's, another agent's job)
        assert forked_mismatch(me, ours.fileno(), pidfd, me) == (
            f"a Forked process {me} that is not the template's child")
    finally:
        for fd in (pidfd, reader, writer):
            os.close(fd)
        ours.close()
        theirs.close()
