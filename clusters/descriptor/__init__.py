"""Descriptor cluster: schema (every id) and server."""
