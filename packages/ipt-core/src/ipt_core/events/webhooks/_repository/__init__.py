"""All SQL of the webhooks family, in SQLAlchemy Core: `endpoints` (subscriptions, disabling,
secrets) and `deliveries` (fan-out, sendable queues, outcomes, the log, retention).

The routes, the relay's fan-out, the delivery loop and replay call them (through
`ipt_core.events.webhooks`) and build no SQL.
"""
