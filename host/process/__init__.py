"""The host's side of its processes: job and template processes started, confined, watched through their pipes
and output, and ended; the per-agent pools of prewarmed processes. What runs inside them is in host.job."""
