"""`WebhookDeliverer`: sends the webhook delivery queue, one request in flight per course.

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
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx
import orjson
from opentelemetry import metrics, propagate, trace
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.db.faults import OutageLog, database_fault
from ipt_core.events.webhooks import (
    Attempt,
    DueDelivery,
    disable_endpoint,
    due_deliveries,
    record_failure,
    record_success,
    secret_context,
    signature_headers,
)
from ipt_core.net import DestinationPolicy, DestinationRefused, GuardedTransport
from ipt_core.sealing import Keyring, SecretsUnavailable
from ipt_core.telemetry import context_from_traceparent
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

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; attempts still in flight then are abandoned (retried)."""
        chains: dict[Partition, asyncio.Task[None]] = {}
        async with httpx.AsyncClient(
            transport=self.transport,
            timeout=self.policy.timeout_s,
            follow_redirects=False,  # a redirect would re-send the signed event elsewhere
            trust_env=False,  # an environment proxy would connect around the SSRF guard
        ) as client:
            try:
                while not stop.is_set():
                    self.wake.clear()
                    await self._start_chains(client, chains)
                    await self._wait(stop, chains)
            finally:
                for task in chains.values():
                    task.cancel()
                await asyncio.gather(*chains.values(), return_exceptions=True)

    async def _start_chains(
        self, client: httpx.AsyncClient, chains: dict[Partition, asyncio.Task[None]]
    ) -> None:
        """Start a chain for each due queue head whose partition has none running."""
        free = self.policy.concurrency - len(chains)
        if free <= 0:
            return
        self._ended.clear()
        try:
            async with self.engine.connect() as conn:
                due = await due_deliveries(conn, self.clock(), limit=free + len(chains))
        except Exception as error:  # the database may be restarting: try again shortly
            self._outage.failed(database_fault(error) or type(error).__name__)
            return
        self._outage.recovered()
        for delivery in due:
            partition = (delivery.endpoint_id, delivery.partition_key)
            if partition in self._ended:
                # Its chain ended while the query ran: the row read may be one it just sent.
                self.wake.set()  # look again at once
                continue
            if partition in chains or len(chains) >= self.policy.concurrency:
                continue  # its chain goes on to this delivery by itself
            task = asyncio.create_task(self._chain(client, delivery))
            chains[partition] = task
            task.add_done_callback(functools.partial(self._forget, chains, partition))

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

    async def _chain(self, client: httpx.AsyncClient, first: DueDelivery) -> None:
        """Deliver one queue's events one after the other until it fails, waits or runs dry.

        Only this task sends to its (endpoint, partition key) while it runs, so the course's
        events leave in order without the queue being searched again after each one.
        """
        delivery: DueDelivery | None = first
        while delivery is not None:
            delivery = await self._attempt(client, delivery)

    async def _attempt(
        self, client: httpx.AsyncClient, delivery: DueDelivery
    ) -> DueDelivery | None:
        """Send one delivery and record it; after a success, return its queue's next due one."""
        status, error, retry_after = await self._post(client, delivery, self.clock())
        _outcomes.add(1, {"outcome": "delivered" if error is None else error.split("-")[0]})
        finished = self.clock()
        try:
            if error is None:
                return await self._delivered(delivery, status or 200, finished)
            delay = retry_delay_s(self.policy, delivery.attempts + 1, retry_after, self.rng)
            attempt = Attempt(
                delivery.id,
                delivery.endpoint_id,
                status,
                error,
                finished + timedelta(seconds=delay),
            )
            await self._failed(attempt, finished)
        except Exception as failure:  # not recorded: the delivery is attempted again
            self._outage.failed(database_fault(failure) or type(failure).__name__)
            await asyncio.sleep(self.policy.poll_interval_s)  # the database may be down
        return None

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
        context = secret_context(delivery.endpoint_id)
        if self.keyring is None:
            return Keyring(()).open(delivery.secret, context=context)  # legacy plain only
        return self.keyring.open(delivery.secret, context=context)

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

    async def _delivered(
        self, delivery: DueDelivery, status: int, now: datetime
    ) -> DueDelivery | None:
        async with self.engine.connect() as conn:
            # One statement: no BEGIN/COMMIT round trips on the hot path.
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            return await record_success(conn, delivery, status, now)

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
