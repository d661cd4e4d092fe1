"""General Diagnostics cluster: schema (every id) and server."""
