"""What starting a job process can fail with."""


class ProcessStartError(Exception):
    """The process did not become ready: it failed to import or set up, crashed, or timed out."""


class NotForkSafeError(ProcessStartError):
    """Job processes of this agent cannot be forked from a template (its code starts a thread at import, or
    the system has no pidfd); they start from the fork server."""
