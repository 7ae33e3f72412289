"""Running livekit-agents code unchanged (`api: livekit-agents`): resolving what an agent file names, and
running a job with a genuine `livekit.agents.JobContext`. Imported only in processes that serve such an
agent (and in `validate`'s checking child); the host and `api: host` agents never import livekit-agents."""

SUPPORTED = ">=1.2,<1.9"  # the livekit-agents minors CI has passed; the extra in pyproject.toml says the same
EXTRA_HINT = "install the extra: pip install 'agenthost[agents]'"
