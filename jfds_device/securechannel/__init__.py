"""Secure channel protocol (Core spec §4.11): StatusReport, session parameters, PASE (and later CASE)."""
