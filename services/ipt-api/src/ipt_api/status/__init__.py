"""Course status reads and dashboard aggregates."""
