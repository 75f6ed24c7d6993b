"""Tables of the events: the transactional outbox, its sequences, and webhook delivery.

Described here, created by migrations 0001 and 0007; `schema.py` exports them with the others.
"""

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Sequence,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from ipt_core.db._metadata import metadata

__all__ = [
    "event_sequence",
    "feed_position",
    "outbox",
    "webhook_delivery",
    "webhook_endpoint",
    "webhook_queue",
]

# -- Events: the transactional outbox (columns compatible with Debezium's outbox router). ----

outbox = Table(
    "outbox",
    metadata,
    Column("seq", BigInteger, Identity(always=True), primary_key=True),  # global order
    Column("id", Text, nullable=False, unique=True),  # CloudEvent id, stable across retries
    Column("aggregatetype", Text, nullable=False),  # e.g. CarePlan
    Column("aggregateid", Text, nullable=False),  # e.g. the course id
    Column("type", Text, nullable=False),  # CloudEvent type
    Column("payload", JSONB, nullable=False),  # the whole CloudEvent envelope
    Column("traceparent", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("published_at", DateTime(timezone=True)),
    # The relay's publication order, the ordered feed's cursor. Not `seq`: `seq` is taken at
    # insert, so a later `seq` can commit first; one relay numbering what it has seen cannot.
    Column("feed_position", BigInteger),
    Index(None, "aggregateid", "seq"),
    Index(None, "created_at"),
    Index(None, "feed_position", unique=True),
    Index("ix_outbox_unpublished", "seq", postgresql_where=text("published_at IS NULL")),
)

# Numbers `outbox.feed_position`; only the relay leader draws from it.
feed_position = Sequence("outbox_feed_position", metadata=metadata)

# The last event sequence number of each aggregate (per-course ordering survives retention).
event_sequence = Table(
    "event_sequence",
    metadata,
    Column("aggregateid", Text, primary_key=True),
    Column("last", BigInteger, nullable=False),
)

# Webhook subscriptions (`/ipt/v1/webhooks`). The secret signs deliveries (Standard Webhooks);
# it is shown once, at creation.
webhook_endpoint = Table(
    "webhook_endpoint",
    metadata,
    Column("id", Text, primary_key=True),
    Column("url", Text, nullable=False),
    Column("secret", Text, nullable=False),  # whsec_<base64 key>
    Column("event_types", ARRAY(Text), nullable=False),  # empty: every type
    Column("therapist_ref", Text),  # only events of this therapist's courses
    Column("organization_ref", Text),  # only events of this organization's courses
    Column("enabled", Boolean, nullable=False),
    Column("disabled_reason", Text),  # gone (the receiver answered 410) | failing
    Column("consecutive_failures", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# One row per (endpoint, event): the relay fans each outbox event out to the endpoints that
# want it; the delivery loop sends the oldest pending row of each (endpoint, partition key).
webhook_delivery = Table(
    "webhook_delivery",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column(
        "endpoint_id",
        Text,
        ForeignKey("webhook_endpoint.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("event_seq", BigInteger, nullable=False),  # outbox.seq: the envelope sent
    Column("event_id", Text, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("partition_key", Text, nullable=False),  # the course id: order is kept per key
    Column("status", Text, nullable=False),  # pending | delivered
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("last_attempt_at", DateTime(timezone=True)),
    Column("last_status_code", Integer),
    Column("last_error", Text),  # timeout | connect | http-<status>; never a response body
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True)),
    Index(None, "endpoint_id", "id"),  # the delivery log
    Index(None, "event_seq"),
    # Only pending rows: a claimed queue's rows, oldest first, without reading what was
    # delivered long ago.
    Index(
        "ix_webhook_delivery_queue",
        "endpoint_id",
        "partition_key",
        "id",
        postgresql_where=text("status = 'pending'"),
    ),
)

# One row per delivery queue (endpoint, partition key) that has pending deliveries: how many,
# and when its head may be sent. The delivery loop claims queues from here, never by walking
# the deliveries, so an endpoint's backlog (one failing for hours, one disabled) costs a claim
# nothing (docs/architecture.md, "Events: outbox and relay"). Kept in the statements that
# queue, deliver, fail, disable and enable; the delivery that empties a queue deletes its row.
webhook_queue = Table(
    "webhook_queue",
    metadata,
    Column(
        "endpoint_id",
        Text,
        ForeignKey("webhook_endpoint.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("partition_key", Text, nullable=False),
    Column("pending", Integer, nullable=False),  # its pending deliveries
    # When its head is due; NULL when nothing is pending or its endpoint is disabled.
    Column("due_at", DateTime(timezone=True)),
    PrimaryKeyConstraint("endpoint_id", "partition_key"),
    Index("ix_webhook_queue_due", "due_at", postgresql_where=text("due_at IS NOT NULL")),
)
