"""`WebhookDeliverer`: sends the webhook delivery queue, one request in flight per course.

One statement finds up to `concurrency` sendable queues (endpoint, course) with up to
`_PER_QUEUE` of their rows each; a chain per queue sends its rows one after the other, and
successes are recorded many at a time (`Acknowledgements`). So a busy loop spends one query
per batch of queues and one write per round of successes, not two statements per event.

Each attempt POSTs the structured CloudEvent (`application/cloudevents+json`) with Standard
Webhooks headers; `webhook-id` is the event id, so a receiver dedupes retries by it. A 2xx
delivers; 410 disables the endpoint; anything else (or a timeout, or no connection) is retried
with backoff, and after `max_failures` consecutive failures the endpoint is disabled. Either
way the endpoint's pending deliveries stay queued until it is enabled again.

Every connection goes through the SSRF guard (`ipt_core.net`): a destination that resolves
to an internal address not on `IPT_OUTBOUND_ALLOW` is refused before any connection is
tried and logged as `refused`, whatever is (or is not) listening there.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx
import orjson
from opentelemetry import metrics, propagate, trace
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.db.faults import OutageLog, database_fault
from ipt_core.events.webhooks import (
    Attempt,
    Delivered,
    DueDelivery,
    disable_endpoint,
    record_failure,
    secret_context,
    sendable,
    signature_headers,
)
from ipt_core.net import DestinationPolicy, DestinationRefused, GuardedTransport
from ipt_core.sealing import Keyring, SecretsUnavailable
from ipt_core.telemetry import context_from_traceparent
from ipt_worker.publishers._acks import Acknowledgements
from ipt_worker.publishers._backoff import DeliveryPolicy, retry_after_s, retry_delay_s

__all__ = ["WebhookDeliverer"]

_log = logging.getLogger(__name__)
_tracer = trace.get_tracer("ipt_worker.webhooks")
# Labels are outcome classes only: never a URL, an endpoint or a course.
_outcomes = metrics.get_meter("ipt_worker.webhooks").create_counter(
    "ipt.webhook.deliveries", description="Webhook delivery attempts by outcome"
)
# httpx logs every request's full URL at INFO; an endpoint's URL may carry credentials.
logging.getLogger("httpx").setLevel(logging.WARNING)
_USER_AGENT = "ipt-care-service-webhooks/1"
Partition = tuple[str, str]  # (endpoint id, partition key): one ordered queue
# Rows of one queue taken per look: enough to stream a course's backlog without a query per
# event, few enough that an endpoint disabled meanwhile gets little more.
_PER_QUEUE = 50


class WebhookDeliverer:
    """Sends queues concurrently (up to `concurrency`), each queue one delivery at a time."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Callable[[], datetime],
        policy: DeliveryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        destinations: DestinationPolicy | None = None,
        keyring: Keyring | None = None,
    ) -> None:
        """Deliver through `transport` (tests: `httpx.MockTransport`), default: the network,
        guarded by `destinations` (default: public addresses only); `keyring` opens the
        endpoints' sealed secrets (IPT_SECRETS_KEYS)."""
        self.keyring = keyring
        self.engine = engine
        self.clock = clock
        self.policy = policy or DeliveryPolicy()
        self.transport = transport or GuardedTransport(
            destinations or DestinationPolicy(),
            limits=httpx.Limits(max_keepalive_connections=self.policy.concurrency),
        )
        self.rng = rng or random.Random()
        self.wake = asyncio.Event()  # set by the relay after it queued deliveries
        self._next_retry: datetime | None = None
        self._ended: set[Partition] = set()  # chains that ended during the current query
        self._outage = OutageLog(_log, "database (webhook delivery)")  # one line per outage
        self._waiting: dict[Partition, list[DueDelivery]] = {}  # claimed, no chain yet
        self._claimed_at = 0.0  # monotonic time of the last claim
        self._secrets: dict[tuple[str, str], str] = {}  # opened once per (endpoint, sealed)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; attempts still in flight then are abandoned (retried)."""
        chains: dict[Partition, asyncio.Task[None]] = {}
        acks = Acknowledgements(self.engine)
        recorder = asyncio.create_task(acks.run())
        async with httpx.AsyncClient(
            transport=self.transport,
            timeout=self.policy.timeout_s,
            follow_redirects=False,  # a redirect would re-send the signed event elsewhere
            trust_env=False,  # an environment proxy would connect around the SSRF guard
        ) as client:
            try:
                while not stop.is_set():
                    self.wake.clear()
                    await self._start_chains(client, chains, acks)
                    await self._wait(stop, chains)
            finally:
                for task in chains.values():
                    task.cancel()
                await asyncio.gather(*chains.values(), return_exceptions=True)
                recorder.cancel()
                await asyncio.gather(recorder, return_exceptions=True)
                await acks.drain()

    async def _start_chains(
        self,
        client: httpx.AsyncClient,
        chains: dict[Partition, asyncio.Task[None]],
        acks: Acknowledgements,
    ) -> None:
        """Start a chain for each sendable queue that has none running, up to `concurrency`.

        One look claims queues for two rounds of chains: those that find no free slot wait
        here (at most a poll interval, after which they are looked up afresh), so a loop
        busy with one-event queues queries once per `concurrency` queues, not once per event.
        """
        if time.monotonic() - self._claimed_at > self.policy.poll_interval_s:
            self._waiting.clear()  # rows read too long ago: read them again
        free = self.policy.concurrency - len(chains)
        if free > len(self._waiting):
            await self._claim(2 * self.policy.concurrency - len(chains), chains)
        while self._waiting and len(chains) < self.policy.concurrency:
            partition = next(iter(self._waiting))
            task = asyncio.create_task(self._chain(client, self._waiting.pop(partition), acks))
            chains[partition] = task
            task.add_done_callback(functools.partial(self._forget, chains, partition))

    async def _claim(self, wanted: int, chains: dict[Partition, asyncio.Task[None]]) -> None:
        """Add up to `wanted` sendable queues (running and waiting ones count) to `_waiting`."""
        self._ended.clear()
        busy = [*chains, *self._waiting]
        try:
            async with self.engine.connect() as conn:
                rows = await sendable(
                    conn,
                    self.clock(),
                    queues=wanted - len(self._waiting),
                    per_queue=_PER_QUEUE,
                    busy=busy,
                )
        except Exception as error:  # the database may be restarting: try again shortly
            self._outage.failed(database_fault(error) or type(error).__name__)
            return
        self._outage.recovered()
        self._claimed_at = time.monotonic()
        for delivery in rows:
            partition = (delivery.endpoint_id, delivery.partition_key)
            if partition in self._ended:
                # Its chain ended while the query ran: the rows read may be ones it just sent.
                self.wake.set()  # look again at once
                continue
            self._waiting.setdefault(partition, []).append(delivery)

    def _forget(
        self, chains: dict[Partition, asyncio.Task[None]], partition: Partition, _: object
    ) -> None:
        chains.pop(partition, None)
        self._ended.add(partition)

    async def _wait(self, stop: asyncio.Event, chains: dict[Partition, asyncio.Task[None]]) -> None:
        timeout = self.policy.poll_interval_s
        if self._next_retry is not None:
            until_retry = (self._next_retry - self.clock()).total_seconds()
            timeout = max(min(timeout, until_retry), 0.005)
            if until_retry <= timeout:
                self._next_retry = None  # the next fetch picks it up
        signals = [asyncio.create_task(stop.wait()), asyncio.create_task(self.wake.wait())]
        try:
            await asyncio.wait(
                [*signals, *chains.values()],
                timeout=timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for signal in signals:
                signal.cancel()

    async def _chain(
        self, client: httpx.AsyncClient, queue: list[DueDelivery], acks: Acknowledgements
    ) -> None:
        """Deliver one queue's rows one after the other until one fails or is not due yet.

        Only this task sends to its (endpoint, partition key) while it runs, so the course's
        events leave in order. It ends once its successes are recorded: until then its rows
        still look pending and must not be read as sendable again.
        """
        recorded: list[asyncio.Future[None]] = []
        try:
            for delivery in queue:
                if delivery.next_attempt_at > self.clock():
                    break  # behind a retry that is not due: the queue waits for it
                status, error, retry_after = await self._post(client, delivery, self.clock())
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
                    status,
                    error,
                    finished + timedelta(seconds=delay),
                )
                await self._failed(attempt, finished)
                break
            await acks.recorded(recorded)
        except Exception as failure:  # not recorded: the delivery is attempted again
            self._outage.failed(database_fault(failure) or type(failure).__name__)
            await asyncio.sleep(self.policy.poll_interval_s)  # the database may be down

    async def _post(
        self, client: httpx.AsyncClient, delivery: DueDelivery, now: datetime
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
            return await self._send(client, delivery, body, headers, now)

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
        self,
        client: httpx.AsyncClient,
        delivery: DueDelivery,
        body: bytes,
        headers: dict[str, str],
        now: datetime,
    ) -> tuple[int | None, str | None, float | None]:
        try:
            response = await client.post(delivery.url, content=body, headers=headers)
        except DestinationRefused:
            return None, "refused", None  # before connecting: nothing learnt about the port
        except httpx.TimeoutException:
            return None, "timeout", None
        except httpx.TransportError:
            return None, "connect", None
        except httpx.HTTPError:
            return None, "request", None
        if response.is_success:
            return response.status_code, None, None
        retry_after = retry_after_s(response.headers.get("retry-after"), now)
        return response.status_code, f"http-{response.status_code}", retry_after

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
        _log.info(
            "webhook delivery %d to endpoint %s failed: %s",
            attempt.delivery_id,
            attempt.endpoint_id,
            attempt.error,
        )
        if self._next_retry is None or attempt.next_attempt_at < self._next_retry:
            self._next_retry = attempt.next_attempt_at
