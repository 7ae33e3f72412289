"""The format of what crosses the pipe between the host and its job and template processes: both sides read it."""
