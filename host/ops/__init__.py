"""What operators see and what bounds the jobs: HTTP, metrics, status, memory and CPU."""
