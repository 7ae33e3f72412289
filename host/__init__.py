"""agenthost: a host for LiveKit agents configured by drop-in YAML files.

This package root stays light on purpose: `agenthost validate` must start fast and
never import the LiveKit SDK. The job API lives in `host.context`.
"""

__version__ = "0.1.0"
