"""All SQL of the webhooks family, in SQLAlchemy Core: `endpoints` (subscriptions, disabling,
secrets), `deliveries` (fan-out, replay, outcomes, the log, retention), `queue_table` (the
queue table kept in step with the deliveries) and `queues` (which worker process sends which
queue: advisory locks, the claim, the claimed rows).

The routes, the relay's fan-out, the delivery loop and replay call them (through
`ipt_core.events.webhooks`) and build no SQL.
"""
