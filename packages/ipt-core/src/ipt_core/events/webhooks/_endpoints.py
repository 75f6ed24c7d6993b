"""Webhook endpoints (subscriptions): all their SQL."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.events.webhooks._signing import new_secret
from ipt_core.sealing import Keyring

__all__ = [
    "Endpoint",
    "create_endpoint",
    "delete_endpoint",
    "endpoint",
    "endpoints",
    "reseal_secrets",
    "secret_context",
    "set_enabled",
]

_COLUMNS = (
    "id, url, event_types, therapist_ref, organization_ref, enabled, disabled_reason, "
    "consecutive_failures, created_at"
)


@dataclass(frozen=True)
class Endpoint:
    """A subscription as listed: everything but its secret."""

    id: str
    url: str
    event_types: tuple[str, ...]  # empty: every type
    therapist_ref: str | None
    organization_ref: str | None
    enabled: bool
    disabled_reason: str | None
    consecutive_failures: int
    created_at: datetime


async def create_endpoint(
    conn: AsyncConnection,
    *,
    url: str,
    event_types: Sequence[str],
    therapist_ref: str | None,
    organization_ref: str | None,
    now: datetime,
    keyring: Keyring,
) -> tuple[Endpoint, str]:
    """Store a new, enabled endpoint; return it and its secret (the only time it is shown).

    The secret is stored sealed with the keyring's current key, never in plain text.
    """
    secret = new_secret()
    endpoint_id = str(uuid.uuid4())
    row = (
        await conn.execute(
            text(
                "INSERT INTO webhook_endpoint (id, url, secret, event_types, therapist_ref, "
                "organization_ref, enabled, consecutive_failures, created_at) VALUES (:id, "
                ":url, :secret, :types, :therapist, :organization, true, 0, :now) "
                f"RETURNING {_COLUMNS}"
            ),
            {
                "id": endpoint_id,
                "url": url,
                "secret": keyring.seal(secret, context=secret_context(endpoint_id)),
                "types": sorted(set(event_types)),
                "therapist": therapist_ref,
                "organization": organization_ref,
                "now": now,
            },
        )
    ).one()
    return _endpoint(row), secret


async def endpoints(conn: AsyncConnection) -> list[Endpoint]:
    """Every endpoint, oldest first."""
    rows = await conn.execute(
        text(f"SELECT {_COLUMNS} FROM webhook_endpoint ORDER BY created_at, id")
    )
    return [_endpoint(row) for row in rows]


async def endpoint(conn: AsyncConnection, endpoint_id: str) -> Endpoint | None:
    """One endpoint, or None."""
    row = (
        await conn.execute(
            text(f"SELECT {_COLUMNS} FROM webhook_endpoint WHERE id = :id"), {"id": endpoint_id}
        )
    ).first()
    return None if row is None else _endpoint(row)


async def delete_endpoint(conn: AsyncConnection, endpoint_id: str) -> bool:
    """Delete an endpoint and its deliveries; False when there was none."""
    deleted = await conn.execute(
        text("DELETE FROM webhook_endpoint WHERE id = :id"), {"id": endpoint_id}
    )
    return bool(deleted.rowcount)


async def set_enabled(
    conn: AsyncConnection, endpoint_id: str, enabled: bool, now: datetime
) -> Endpoint | None:
    """Turn an endpoint on (its waiting deliveries become due now) or off; None if unknown."""
    row = (
        await conn.execute(
            text(
                "UPDATE webhook_endpoint SET enabled = :enabled, consecutive_failures = 0, "
                "disabled_reason = CASE WHEN :enabled THEN NULL ELSE 'manual' END "
                f"WHERE id = :id RETURNING {_COLUMNS}"
            ),
            {"id": endpoint_id, "enabled": enabled},
        )
    ).first()
    if row is not None and enabled:
        await conn.execute(
            text(
                "UPDATE webhook_delivery SET next_attempt_at = :now "
                "WHERE endpoint_id = :id AND status = 'pending' AND next_attempt_at > :now"
            ),
            {"id": endpoint_id, "now": now},
        )
    return None if row is None else _endpoint(row)


def secret_context(endpoint_id: str) -> str:
    """What an endpoint's sealed secret is bound to: that endpoint's row."""
    return f"webhook_endpoint.secret:{endpoint_id}"


async def reseal_secrets(conn: AsyncConnection, keyring: Keyring) -> int:
    """Seal every plain secret, and re-seal those of older keys with the current one.

    Returns how many rows changed. Rows are locked one statement at a time, so running it
    while the service runs is safe; a secret whose key is missing raises SecretsUnavailable.
    """
    rows = await conn.execute(
        text("SELECT id, secret FROM webhook_endpoint ORDER BY id FOR UPDATE")
    )
    changed = 0
    for row in rows.all():
        if not keyring.needs_reseal(row.secret):
            continue
        context = secret_context(row.id)
        plain = keyring.open(row.secret, context=context)
        await conn.execute(
            text("UPDATE webhook_endpoint SET secret = :secret WHERE id = :id"),
            {"id": row.id, "secret": keyring.seal(plain, context=context)},
        )
        changed += 1
    return changed


def _endpoint(row: Any) -> Endpoint:
    return Endpoint(
        id=row.id,
        url=row.url,
        event_types=tuple(row.event_types),
        therapist_ref=row.therapist_ref,
        organization_ref=row.organization_ref,
        enabled=row.enabled,
        disabled_reason=row.disabled_reason,
        consecutive_failures=row.consecutive_failures,
        created_at=row.created_at,
    )
