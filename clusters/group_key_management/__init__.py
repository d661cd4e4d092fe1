"""Group Key Management cluster: schema (every id) and server."""
