"""`benchd serve`: configuration, the HTTP API, /metrics and the daemon that wires them."""
