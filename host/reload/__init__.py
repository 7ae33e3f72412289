"""Reload: validate -> diff (a pure plan) -> apply, triggered by SIGHUP or by watched files."""
