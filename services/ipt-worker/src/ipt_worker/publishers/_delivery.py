"""`WebhookDeliverer`: sends the webhook delivery queue, one request in flight per course.

Every worker process runs one. It sends only the queues (endpoint, course) it holds the lock
of (`QueueLeases`): one claim locks up to four rounds of sendable queues that no process holds
and reads up to `_PER_QUEUE` of their rows each; up to `concurrency` senders take the queues
one after the other, each sending a queue's rows in order, and successes are recorded many
at a time (`Acknowledgements`). So a busy loop spends a few statements per batch of queues
and one write per round of successes, not two statements per event; a sender does not wait
for the write (the queue stays locked until it is done), so under load a delivery costs its
request. More worker processes deliver more: each takes its own share of the queues.

Each attempt POSTs the structured CloudEvent (`application/cloudevents+json`) with Standard
Webhooks headers; `webhook-id` is the event id, so a receiver dedupes retries by it. A 2xx
delivers; 410 disables the endpoint; anything else (or a timeout, or no connection) is retried
with backoff, and after `max_failures` consecutive failures the endpoint is disabled. Either
way the endpoint's pending deliveries stay queued until it is enabled again.

POSTs go through `ipt_core.net.PostClient`, a small HTTP/1.1 client made for this loop (a
POST through httpx cost ten times its CPU; docs/architecture.md, "Events, outbox and
relay"). Every connection goes through its SSRF guard: a destination that resolves to an
internal address not on `IPT_OUTBOUND_ALLOW` is refused before any connection is tried and
logged as `refused`, whatever is (or is not) listening there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import orjson
from opentelemetry import metrics, propagate, trace
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.db.faults import OutageLog, database_fault
from ipt_core.events.webhooks import (
    Attempt,
    Delivered,
    DueDelivery,
    Queue,
    disable_endpoint,
    hold,
    record_failure,
    secret_context,
    signature_headers,
)
from ipt_core.net import DestinationPolicy, DestinationRefused, PostClient
from ipt_core.sealing import Keyring, SecretsUnavailable
from ipt_core.telemetry import context_from_traceparent
from ipt_worker.publishers._acks import Acknowledgements
from ipt_worker.publishers._backoff import DeliveryPolicy, retry_after_s, retry_delay_s
from ipt_worker.publishers._leases import QueueLeases

__all__ = ["WebhookDeliverer"]

_log = logging.getLogger(__name__)
_tracer = trace.get_tracer("ipt_worker.webhooks")
# Labels are outcome classes only: never a URL, an endpoint or a course.
_outcomes = metrics.get_meter("ipt_worker.webhooks").create_counter(
    "ipt.webhook.deliveries", description="Webhook delivery attempts by outcome"
)
_USER_AGENT = "ipt-care-service-webhooks/1"
# Rows of one queue taken per look: enough to stream a course's backlog without a query per
# event, few enough that an endpoint disabled meanwhile gets little more.
_PER_QUEUE = 50
# Claims are at least this far apart. Under a steady stream every relay batch and every
# finished queue wakes the loop; claiming at each wake took a few statements per one or two
# events, ~15% of `ipt run`'s CPU per create in the events benchmark. Paced, a claim takes
# what gathered meanwhile, for at most this much more latency.
_CLAIM_PACE_S = 0.02
# Rounds of senders one claim takes queues for: with claims paced, enough that the pace
# bounds throughput far above what the senders can send (4 x 8 queues per 20 ms).
_ROUNDS = 4


class WebhookDeliverer:
    """Sends queues concurrently (up to `concurrency`), each queue one delivery at a time."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Callable[[], datetime],
        policy: DeliveryPolicy | None = None,
        rng: random.Random | None = None,
        destinations: DestinationPolicy | None = None,
        keyring: Keyring | None = None,
    ) -> None:
        """Deliver to destinations `destinations` allows (default: public addresses only);
        `keyring` opens the endpoints' sealed secrets (IPT_SECRETS_KEYS)."""
        self.keyring = keyring
        self.engine = engine
        self.clock = clock
        self.policy = policy or DeliveryPolicy()
        self.client = PostClient(
            destinations or DestinationPolicy(),
            timeout_s=self.policy.timeout_s,
            keep_idle=self.policy.concurrency,
        )
        self.rng = rng or random.Random()
        self.wake = asyncio.Event()  # deliveries were queued (NOTIFY), or a queue was released
        self._next_retry: datetime | None = None
        self._outage = OutageLog(_log, "database (webhook delivery)")  # one line per outage
        self._waiting: dict[Queue, list[DueDelivery]] = {}  # claimed, no sender yet
        self._claimed_at = 0.0  # monotonic time of the last claim
        self._claim_in: float | None = None  # seconds until a claim held back by the pace
        self._secrets: dict[tuple[str, str], str] = {}  # opened once per (endpoint, sealed)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; attempts still in flight then are abandoned (retried).

        A database failure ends the lock connection, and with it every queue this process
        held: its senders are stopped (what they sent but did not record is sent again), and
        delivery starts afresh on a new connection once the database answers.
        """
        try:
            while not stop.is_set():
                try:
                    async with QueueLeases.opened(self.engine, self.wake) as leases:
                        await self._deliver(stop, leases)
                except Exception as error:  # the database restarts, the connection drops
                    self._outage.failed(database_fault(error) or type(error).__name__)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.policy.poll_interval_s)
        finally:
            await self.client.aclose()

    async def _deliver(self, stop: asyncio.Event, leases: QueueLeases) -> None:
        # A new connection holds no queue: nothing left waiting may hold one back.
        self._waiting.clear()
        senders: set[asyncio.Task[None]] = set()
        acks = Acknowledgements(self.engine)
        recorder = asyncio.create_task(acks.run())
        try:
            while not stop.is_set():
                self.wake.clear()
                await self._start_senders(senders, acks, leases)
                await self._wait(stop, senders)
        finally:
            for task in senders:
                task.cancel()
            await asyncio.gather(*senders, return_exceptions=True)
            recorder.cancel()
            await asyncio.gather(recorder, return_exceptions=True)
            await acks.drain()  # before the locks go with the connection

    async def _start_senders(
        self,
        senders: set[asyncio.Task[None]],
        acks: Acknowledgements,
        leases: QueueLeases,
    ) -> None:
        """Claim queues when fewer than a round of them wait; start senders up to `concurrency`.

        One look claims queues for `_ROUNDS` rounds of senders, so a loop busy with one-event
        queues queries about once per `concurrency` queues, not once per event. Waiting queues are
        given back and looked up afresh after a poll interval.
        """
        if time.monotonic() - self._claimed_at > self.policy.poll_interval_s:
            for queue in self._waiting:  # rows read too long ago: read them again
                leases.release(queue)
            self._waiting.clear()
        self._claim_in = None
        if len(self._waiting) < self.policy.concurrency:
            since = time.monotonic() - self._claimed_at
            if since >= _CLAIM_PACE_S:
                wanted = _ROUNDS * self.policy.concurrency - len(self._waiting)
                await self._claim(wanted, leases)
            else:
                self._claim_in = _CLAIM_PACE_S - since  # `_wait` comes back for it
        while self._waiting and len(senders) < self.policy.concurrency:
            task = asyncio.create_task(self._sender(acks, leases))
            senders.add(task)
            task.add_done_callback(senders.discard)

    async def _claim(self, wanted: int, leases: QueueLeases) -> None:
        """Lock up to `wanted` sendable queues that no process holds (not this one either:
        its sending and waiting queues are locked) and add them to `_waiting`."""
        rows = await leases.claim(self.clock(), queues=wanted, per_queue=_PER_QUEUE)
        self._outage.recovered()
        self._claimed_at = time.monotonic()
        for delivery in rows:
            queue = (delivery.endpoint_id, delivery.partition_key)
            self._waiting.setdefault(queue, []).append(delivery)

    async def _wait(self, stop: asyncio.Event, senders: set[asyncio.Task[None]]) -> None:
        timeout = self.policy.poll_interval_s
        if self._claim_in is not None:
            timeout = min(timeout, self._claim_in)
        if self._next_retry is not None:
            until_retry = (self._next_retry - self.clock()).total_seconds()
            timeout = max(min(timeout, until_retry), 0.005)
            if until_retry <= timeout:
                self._next_retry = None  # the next fetch picks it up
        signals = [asyncio.create_task(stop.wait()), asyncio.create_task(self.wake.wait())]
        try:
            await asyncio.wait(
                [*signals, *senders], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for signal in signals:
                signal.cancel()

    async def _sender(self, acks: Acknowledgements, leases: QueueLeases) -> None:
        """Send waiting queues, oldest first, one after the other, until none waits.

        A queue stays locked from the moment it is claimed until its successes are recorded:
        until then its rows still look pending. The sender does not wait for that
        recording: it goes on with the next queue, so under load a delivery costs its
        request, not also a round trip of the acknowledgements.
        """
        while self._waiting:
            queue = next(iter(self._waiting))
            rows = self._waiting.pop(queue)
            recorded: list[asyncio.Future[None]] = []
            try:
                await self._send_queue(rows, acks, recorded)
            finally:
                self._release_when_recorded(queue, recorded, leases)

    def _release_when_recorded(
        self, queue: Queue, recorded: list[asyncio.Future[None]], leases: QueueLeases
    ) -> None:
        """Give `queue` back once `recorded` are settled (then look again)."""

        def release(_: object = None) -> None:
            leases.release(queue)
            self.wake.set()  # its later rows (beyond the rows claimed) are sendable now

        if not recorded:
            release()
            return
        # Settled whether recorded or not: a success never recorded stays pending, is re-sent.
        asyncio.gather(*set(recorded), return_exceptions=True).add_done_callback(release)

    async def _send_queue(
        self,
        rows: list[DueDelivery],
        acks: Acknowledgements,
        recorded: list[asyncio.Future[None]],
    ) -> None:
        """Deliver one queue's rows one after the other until one fails or is not due yet.

        Only this sender sends to its (endpoint, partition key) while it is busy, so the
        course's events leave in order. Each success's recording is appended to `recorded`.
        """
        try:
            for delivery in rows:
                if delivery.next_attempt_at > self.clock():
                    break  # behind a retry that is not due: the queue waits for it
                status, error, retry_after = await self._post(delivery, self.clock())
                _outcomes.add(1, {"outcome": "delivered" if error is None else error.split("-")[0]})
                finished = self.clock()
                if error is None:
                    success = Delivered(delivery.id, delivery.endpoint_id, status or 200, finished)
                    recorded.append(acks.add(success))
                    continue
                # Earlier successes first: they reset the failure count this failure raises.
                await acks.recorded(recorded)
                delay = retry_delay_s(self.policy, delivery.attempts + 1, retry_after, self.rng)
                attempt = Attempt(
                    delivery.id,
                    delivery.endpoint_id,
                    delivery.partition_key,
                    status,
                    error,
                    finished + timedelta(seconds=delay),
                )
                await self._failed(attempt, finished)
                break
        except Exception as failure:  # not recorded: the delivery is attempted again
            self._outage.failed(database_fault(failure) or type(failure).__name__)
            await asyncio.sleep(self.policy.poll_interval_s)  # the database may be down

    async def _post(
        self, delivery: DueDelivery, now: datetime
    ) -> tuple[int | None, str | None, float | None]:
        """Send one attempt; return (status, error, Retry-After seconds)."""
        body = orjson.dumps(delivery.envelope)
        try:
            secret = self._open_secret(delivery)
        except SecretsUnavailable:
            # Not sent unsigned: retried once the key is configured (see README, Security).
            _log.error("webhook endpoint %s: its secret does not open", delivery.endpoint_id)
            return None, "secret-unavailable", None
        headers = {
            "content-type": "application/cloudevents+json",
            "user-agent": _USER_AGENT,
            **signature_headers(secret, str(delivery.envelope["id"]), int(now.timestamp()), body),
        }
        # The delivery continues the trace of the write that caused the event (traceparent).
        context = context_from_traceparent(delivery.envelope.get("traceparent"))
        with _tracer.start_as_current_span(
            "webhook delivery", context=context, kind=trace.SpanKind.PRODUCER
        ) as span:
            span.set_attribute("cloudevents.event_type", str(delivery.envelope.get("type")))
            propagate.inject(headers)
            return await self._send(delivery, body, headers, now)

    def _open_secret(self, delivery: DueDelivery) -> str:
        cached = (delivery.endpoint_id, delivery.secret)
        opened = self._secrets.get(cached)
        if opened is None:
            context = secret_context(delivery.endpoint_id)
            keyring = self.keyring or Keyring(())  # without keys: legacy plain secrets only
            opened = keyring.open(delivery.secret, context=context)
            self._secrets[cached] = opened
        return opened

    async def _send(
        self, delivery: DueDelivery, body: bytes, headers: dict[str, str], now: datetime
    ) -> tuple[int | None, str | None, float | None]:
        try:
            answer = await self.client.post(delivery.url, body, headers)
        except DestinationRefused:
            return None, "refused", None  # before connecting: nothing learnt about the port
        except TimeoutError:
            return None, "timeout", None
        except OSError:  # no connection, or it broke before a whole answer came
            return None, "connect", None
        except ValueError:  # a URL or header that cannot be sent
            return None, "request", None
        trace.get_current_span().set_attribute("http.response.status_code", answer.status)
        if 200 <= answer.status < 300:
            return answer.status, None, None
        retry_after = retry_after_s(answer.retry_after, now)
        return answer.status, f"http-{answer.status}", retry_after

    async def _failed(self, attempt: Attempt, now: datetime) -> None:
        async with self.engine.begin() as conn:
            failures = await record_failure(conn, attempt, now)
            reason = "gone" if attempt.status_code == 410 else None
            if failures >= self.policy.max_failures:
                reason = reason or "failing"
            if reason is not None and await disable_endpoint(
                conn, attempt.endpoint_id, reason, now
            ):
                # Ids only: an endpoint's URL may carry credentials.
                _log.warning("webhook endpoint %s disabled: %s", attempt.endpoint_id, reason)
            else:  # not with a disable: that parks every queue of the endpoint, in key order
                queue = (attempt.endpoint_id, attempt.partition_key)
                await hold(conn, queue, attempt.next_attempt_at)
        _log.info(
            "webhook delivery %d to endpoint %s failed: %s",
            attempt.delivery_id,
            attempt.endpoint_id,
            attempt.error,
        )
        if self._next_retry is None or attempt.next_attempt_at < self._next_retry:
            self._next_retry = attempt.next_attempt_at
