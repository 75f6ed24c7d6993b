"""Analytics reads: the status snapshot with its feed position, status history, trends."""
