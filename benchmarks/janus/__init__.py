"""Janus as a benchmark target: its configuration, its HTTP API client and its loopback shim."""
