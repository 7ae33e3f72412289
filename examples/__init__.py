"""Example agents for agenthost, one for each example of the job-lifecycle document."""
