"""Administrator Commissioning cluster: schema (every id) and server."""
