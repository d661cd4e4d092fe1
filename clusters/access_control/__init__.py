"""Access Control cluster: schema (every id) and server."""
