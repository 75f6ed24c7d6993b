"""One endpoint's sync context: the remote API, its capabilities, timings, database."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.ehr import repository as repo
from ipt_core.ehr.capabilities import Capabilities, parse_capabilities
from ipt_core.ehr.endpoints import EhrEndpoint
from ipt_core.ehr.errors import RemoteUnavailable
from ipt_core.ehr.remote import RemoteEhr
from ipt_core.fhir.store import WriteListener
from ipt_worker.publishers import DeliveryPolicy, retry_after_s, retry_delay_s
from ipt_worker.settings import WorkerSettings

__all__ = ["EhrTiming", "EndpointSync", "backoff", "timing_from"]


@dataclass(frozen=True)
class EhrTiming:
    """Timeouts, retries and intervals of the sync loops (from the worker's settings)."""

    timeout_s: float = 15.0
    attempts: int = 4  # per request, before the push item is rescheduled
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 300.0
    poll_interval_s: float = 1.0
    batch_size: int = 50
    concurrency: int = 4  # items pushed at once
    lease_s: float = 120.0
    capabilities_refresh_s: float = 3600.0
    page_size: int = 100


def backoff(timing: EhrTiming, rng: random.Random) -> Callable[[int, RemoteUnavailable], float]:
    """Exponential backoff with jitter, or the EHR's `Retry-After` (shared with webhooks)."""
    policy = DeliveryPolicy(
        backoff_initial_s=timing.backoff_initial_s, backoff_max_s=timing.backoff_max_s
    )

    def delay(attempt: int, error: RemoteUnavailable) -> float:
        after = retry_after_s(error.retry_after, datetime.now(UTC))
        return retry_delay_s(policy, attempt, after, rng)

    return delay


@dataclass
class EndpointSync:
    """Everything a push or pull pass of one endpoint needs."""

    endpoint: EhrEndpoint
    remote: RemoteEhr
    engine: AsyncEngine
    listeners: Sequence[WriteListener]
    timing: EhrTiming = field(default_factory=EhrTiming)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    capabilities: Capabilities | None = None
    capabilities_read_at: float | None = None  # time.monotonic()
    rng: random.Random = field(default_factory=random.Random)
    _locks: dict[str, tuple[asyncio.Lock, list[int]]] = field(default_factory=dict)

    @contextlib.asynccontextmanager
    async def write_lock(self, target: str) -> AsyncIterator[None]:
        """Serialise this process's writes of one remote resource (forgotten when unused)."""
        lock, users = self._locks.setdefault(target, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[target]

    @property
    def name(self) -> str:
        """The endpoint's name."""
        return self.endpoint.name

    def push_types(self) -> tuple[str, ...]:
        """The configured push types the EHR accepts (none before its capabilities are read)."""
        if self.capabilities is None:
            return ()
        return self.capabilities.push_types(self.endpoint.push)

    async def refresh_capabilities(self, monotonic_now: float) -> None:
        """Read the CapabilityStatement and store what it allows."""
        statement = await self.remote.metadata()
        capabilities = parse_capabilities(statement)
        self.capabilities = capabilities
        self.capabilities_read_at = monotonic_now
        async with self.engine.begin() as conn:
            await repo.set_capabilities(
                conn, self.name, capabilities.summary(), self.push_types(), self.clock()
            )

    def capabilities_due(self, monotonic_now: float) -> bool:
        """Whether the CapabilityStatement should be read (again)."""
        return (
            self.capabilities_read_at is None
            or monotonic_now - self.capabilities_read_at >= self.timing.capabilities_refresh_s
        )


def timing_from(settings: WorkerSettings) -> EhrTiming:
    """The sync timings of the worker's settings (`IPT_EHR_*`)."""
    # Each timing is the setting of the same name with the `ehr_` prefix.
    return EhrTiming(**{f.name: getattr(settings, f"ehr_{f.name}") for f in fields(EhrTiming)})
