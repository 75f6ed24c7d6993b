"""Helpers of the event tests: a real webhook receiver, event seeding, relay runners.

The receiver is a real HTTP server on 127.0.0.1 (the standard library's, in a thread) that
checks every signature with the `standardwebhooks` library, not with the service's code.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from ipt_core.events import append_events, cloud_event, next_sequence, webhooks
from ipt_core.net import DestinationPolicy
from ipt_core.sealing import Keyring
from ipt_worker.publishers import DeliveryPolicy, WebhookDeliverer
from ipt_worker.relay import EventRelay, RelayTiming
from tests.support.api import TEST_SECRETS_KEYS
from tests.support.clock import utc_now
from tests.support.database import query_rows
from tests.support.network import free_port
from tests.support.scripted_http import ScriptedServer

__all__ = [
    "LOOPBACK_ALLOWED",
    "QUEUE_LOCK_HOLDERS",
    "TEST_KEYRING",
    "Receipt",
    "Reply",
    "WebhookReceiver",
    "append_course_events",
    "assert_in_order_per_course",
    "assert_queues_match_deliveries",
    "fan_out_all",
    "fast_policy",
    "fast_timing",
    "queues_checked",
    "receiver",
    "running",
    "subscribe",
    "webhook_relay",
]


@dataclass(frozen=True)
class Reply:
    """How the receiver answers one request."""

    status: int = 204
    delay_s: float = 0.0  # wait before answering (to make the sender time out)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Receipt:
    """One request the receiver got."""

    envelope: dict[str, Any]
    headers: dict[str, str]
    signature_ok: bool
    status: int
    at: float  # time.monotonic()


# Given the envelope and how many times this event id arrived (1 for the first), the reply.
Plan = Callable[[dict[str, Any], int], Reply]


class WebhookReceiver:
    """A dashboard's webhook endpoint: records requests, answers as `plan` says."""

    def __init__(self) -> None:
        """Pick a port; `start()` listens on it (again after `stop()`)."""
        self.port = free_port()
        self.secret = ""
        self.plan: Plan = lambda envelope, attempt: Reply()
        self.receipts: list[Receipt] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """The URL to subscribe."""
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self) -> None:
        """Listen (on the same port every time)."""
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        self._server = server

    def stop(self) -> None:
        """Stop listening: connections are refused until `start()`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def accepted(self) -> list[dict[str, Any]]:
        """Envelopes answered with 2xx, in arrival order."""
        with self._lock:
            return [r.envelope for r in self.receipts if 200 <= r.status < 300]

    def accepted_ids(self) -> set[str]:
        """Ids of the events answered with 2xx."""
        return {envelope["id"] for envelope in self.accepted()}

    def record(self, envelope: dict[str, Any], headers: dict[str, str], body: bytes) -> Reply:
        """Check the signature, count the attempt, and decide the reply."""
        try:
            Webhook(self.secret).verify(body, headers)
            signature_ok = True
        except WebhookVerificationError:
            signature_ok = False
        with self._lock:
            attempt = 1 + sum(r.envelope["id"] == envelope["id"] for r in self.receipts)
            reply = self.plan(envelope, attempt)
            receipt = Receipt(envelope, headers, signature_ok, reply.status, time.monotonic())
            self.receipts.append(receipt)
        return reply


# Each delivery queue as `webhook_queue` has it beside what its deliveries say, with its head.
_QUEUES_BESIDE_DELIVERIES = """
SELECT coalesce(q.endpoint_id, d.endpoint_id) AS endpoint_id,
       coalesce(q.partition_key, d.partition_key) AS partition_key,
       q.pending AS counted, coalesce(d.pending, 0) AS pending, e.enabled,
       q.due_at, h.attempts AS head_attempts, h.next_attempt_at AS head_retry_at
FROM webhook_queue q
FULL JOIN (SELECT endpoint_id, partition_key, count(*) AS pending FROM webhook_delivery
           WHERE status = 'pending' GROUP BY endpoint_id, partition_key) d
  ON d.endpoint_id = q.endpoint_id AND d.partition_key = q.partition_key
JOIN webhook_endpoint e ON e.id = coalesce(q.endpoint_id, d.endpoint_id)
LEFT JOIN (SELECT DISTINCT ON (endpoint_id, partition_key) endpoint_id, partition_key,
                  attempts, next_attempt_at
           FROM webhook_delivery WHERE status = 'pending'
           ORDER BY endpoint_id, partition_key, id) h
  ON h.endpoint_id = d.endpoint_id AND h.partition_key = d.partition_key
"""


def _queue_is_wrong(row: Any) -> bool:
    if row.counted != row.pending or row.counted == 0:  # an emptied queue is deleted
        return True
    if (row.due_at is not None) != row.enabled:
        return True
    # A head that failed is not due before its retry.
    return bool(row.due_at and row.head_attempts and row.due_at < row.head_retry_at)


async def assert_queues_match_deliveries(db: AsyncEngine) -> None:
    """Every queue with deliveries pending, and only those, counts them; it is due exactly
    when its endpoint is enabled, and not before a failed head's retry
    (docs/architecture.md, "Events: outbox and relay")."""
    rows = await query_rows(db, _QUEUES_BESIDE_DELIVERIES)
    wrong = [row._asdict() for row in rows if _queue_is_wrong(row)]
    assert wrong == [], wrong


@pytest.fixture
async def queues_checked(db: AsyncEngine) -> AsyncIterator[None]:
    """After the test (its loops stopped), the queue table matches the deliveries."""
    yield
    await assert_queues_match_deliveries(db)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A dashboard's webhook endpoint listening on 127.0.0.1 (answers 204 unless told)."""
    server = WebhookReceiver()
    server.start()
    yield server
    server.stop()


def _handler(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {name.lower(): value for name, value in self.headers.items()}
            reply = receiver.record(orjson.loads(body), headers, body)
            time.sleep(reply.delay_s)
            with contextlib.suppress(OSError):  # the sender may have given up waiting
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def fast_timing(**overrides: Any) -> RelayTiming:
    """Relay timings for tests: short waits everywhere."""
    fast = RelayTiming(batch_size=100, poll_interval_s=0.2, standby_retry_s=0.1, reconnect_s=0.1)
    return replace(fast, **overrides)


def fast_policy(**overrides: Any) -> DeliveryPolicy:
    """Delivery policy for tests: quick retries, no disabling unless asked."""
    policy = DeliveryPolicy(
        timeout_s=2.0,
        concurrency=8,
        backoff_initial_s=0.05,
        backoff_max_s=0.4,
        max_failures=10_000,
        poll_interval_s=0.1,
    )
    return replace(policy, **overrides)


# The sessions holding webhook queue locks in this database (bind `queue_locks=QUEUE_LOCKS`).
QUEUE_LOCK_HOLDERS = (
    "SELECT DISTINCT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND objsubid = 2 AND classid::bigint = :queue_locks "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)

# The test receivers listen on loopback, which the SSRF guard refuses unless allowed.
LOOPBACK_ALLOWED = ("127.0.0.1",)
TEST_KEYRING = Keyring.parse(TEST_SECRETS_KEYS)


def webhook_relay(
    engine: AsyncEngine,
    policy: DeliveryPolicy | None = None,
    allow: Sequence[str] = LOOPBACK_ALLOWED,
) -> EventRelay:
    """A relay that fans out to webhook endpoints and runs the delivery loop.

    Deliveries go through the SSRF guard with `allow` as IPT_OUTBOUND_ALLOW.
    """
    deliverer = WebhookDeliverer(
        engine,
        clock=utc_now,
        policy=policy or fast_policy(),
        destinations=DestinationPolicy.parse(allow),
        keyring=TEST_KEYRING,
    )
    return EventRelay(engine, clock=utc_now, timing=fast_timing(), deliverer=deliverer)


async def subscribe(
    engine: AsyncEngine,
    receiver: WebhookReceiver | ScriptedServer,
    *,
    event_types: Sequence[str] = (),
    **filters: str,
) -> str:
    """Create an endpoint for `receiver` (which learns the secret); return its id."""
    async with engine.begin() as conn:
        endpoint, secret = await webhooks.create_endpoint(
            conn,
            url=receiver.url,
            event_types=event_types,
            therapist_ref=filters.get("therapist"),
            organization_ref=filters.get("organization"),
            now=utc_now(),
            keyring=TEST_KEYRING,
        )
    receiver.secret = secret
    return endpoint.id


@contextlib.asynccontextmanager
async def running(relay: EventRelay) -> AsyncIterator[EventRelay]:
    """Run `relay` in a task for the duration of the block."""
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        yield relay
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


async def append_course_events(
    db: AsyncEngine,
    courses: Sequence[str],
    per_course: int,
    *,
    type_: str = "ipt.course.status.changed",
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Append `per_course` events for each course, interleaved, one transaction per round."""
    now = now or datetime.now(UTC)
    appended: list[dict[str, Any]] = []
    for round_ in range(per_course):
        async with db.begin() as conn:
            for course in courses:
                event = cloud_event(
                    type_=type_,
                    subject=f"CarePlan/{course}",
                    partition_key=course,
                    sequence=await next_sequence(conn, course),
                    time=now,
                    data={"course_id": course, "round": round_},
                )
                await append_events(conn, "CarePlan", [event], now)
                appended.append(event)
    return appended


async def fan_out_all(db: AsyncEngine) -> None:
    """Publish every unpublished event to the webhook endpoints, no delivery loop running."""
    relay = webhook_relay(db)  # its delivery loop is not started
    async with relay_connection(db) as conn:
        while await relay.publish_batch(conn):
            pass


@contextlib.asynccontextmanager
async def relay_connection(db: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection in autocommit, as the relay leader publishes on."""
    async with db.connect() as conn:
        yield await conn.execution_options(isolation_level="AUTOCOMMIT")


def assert_in_order_per_course(envelopes: Iterable[dict[str, Any]]) -> None:
    """Per partition key, sequences never go back (a retried duplicate may repeat one)."""
    by_course: dict[str, list[int]] = defaultdict(list)
    for envelope in envelopes:
        by_course[envelope["partitionkey"]].append(int(envelope["sequence"]))
    for course, sequences in by_course.items():
        assert sequences == sorted(sequences), f"{course} out of order: {sequences}"
