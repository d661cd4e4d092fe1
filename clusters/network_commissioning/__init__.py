"""Network Commissioning cluster: schema (every id) and server."""
