"""Job processes: the messages they exchange with the host, their handles, the per-agent pools, and the
code that runs inside them."""
