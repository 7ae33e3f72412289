"""What starting a job process can fail with."""


class ProcessStartError(Exception):
    """The process did not become ready: it failed to import or set up, crashed, or timed out."""


class NotForkSafeError(ProcessStartError):
    """The agent's code started a thread at import: its job processes cannot be forked from a template."""
