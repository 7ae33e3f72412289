"""What runs inside a job or template process (never in the host): a job process's main and its runtimes,
a template's main, and what they do to themselves and say to the host."""
