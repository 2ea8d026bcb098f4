"""Asynchronous jobs: their settings, the poller every process runs, and their client views."""
