"""The running host: its lifecycle, the agents it serves, the jobs it runs, and the worker protocol."""
