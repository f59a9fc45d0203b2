"""Reads that commands, views and services share, one module per concept
(as in releases.services); import each from its module."""
