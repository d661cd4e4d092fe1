"""Durable storage: SQLite underneath, Matter-agnostic key/value and counters on top (README, Architecture)."""
