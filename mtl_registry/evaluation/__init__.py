"""Metrics on held-out data and their JSON / Markdown reports."""
