"""Testing agents by voice from outside the host: local speech and a real caller (`agenthost call`)."""
