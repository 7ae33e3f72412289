"""End-to-end helpers shared by the tests, the benchmarks and the demo: a private network namespace,
a real livekit-server, `agenthost run` as a subprocess, and real rtc clients."""
