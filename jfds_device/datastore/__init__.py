"""Durable storage: SQLite underneath, Matter-agnostic key/value and counters on top (architecture §6)."""
