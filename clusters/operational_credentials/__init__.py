"""Operational Credentials cluster: schema (every id) and server."""
