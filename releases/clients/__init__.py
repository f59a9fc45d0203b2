"""Clients: one module per external system (package index, GitHub, OSV,
pypistats, project pages, artifact storage). Pure I/O that returns
dataclasses; no models, no settings beyond what the caller passes, nothing of
the console above them."""
