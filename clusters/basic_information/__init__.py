"""Basic Information cluster: schema (every id) and server."""
