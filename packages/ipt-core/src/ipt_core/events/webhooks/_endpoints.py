"""Creating endpoints with sealed secrets, and re-sealing stored secrets (key rotation)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.events.webhooks._model import Endpoint
from ipt_core.events.webhooks._repository import endpoints as repository
from ipt_core.events.webhooks._signing import new_secret
from ipt_core.ids import new_id
from ipt_core.sealing import Keyring

__all__ = ["create_endpoint", "reseal_secrets", "secret_context"]


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
    endpoint_id = new_id()
    endpoint = await repository.insert_endpoint(
        conn,
        endpoint_id=endpoint_id,
        url=url,
        sealed_secret=keyring.seal(secret, context=secret_context(endpoint_id)),
        event_types=event_types,
        therapist_ref=therapist_ref,
        organization_ref=organization_ref,
        now=now,
    )
    return endpoint, secret


def secret_context(endpoint_id: str) -> str:
    """What an endpoint's sealed secret is bound to: that endpoint's row."""
    return f"webhook_endpoint.secret:{endpoint_id}"


async def reseal_secrets(conn: AsyncConnection, keyring: Keyring) -> int:
    """Seal every plain secret, and re-seal those of older keys with the current one.

    Returns how many rows changed. The rows stay locked until the caller's transaction ends,
    so running it while the service runs is safe; a secret whose key is missing raises
    SecretsUnavailable.
    """
    changed = 0
    for endpoint_id, stored in await repository.locked_secrets(conn):
        if not keyring.needs_reseal(stored):
            continue
        context = secret_context(endpoint_id)
        plain = keyring.open(stored, context=context)
        await repository.set_secret(conn, endpoint_id, keyring.seal(plain, context=context))
        changed += 1
    return changed
