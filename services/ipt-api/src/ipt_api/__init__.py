"""IPT Care Service HTTP API."""
