"""HTTP routes of webhook subscriptions (HTTP only; the SQL is in `ipt_core.events.webhooks`).

Managing subscriptions needs the scopes of the FHIR resource they stand for, `Subscription`
(e.g. `system/Subscription.cruds`). Errors are OperationOutcomes, as everywhere.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Path, Query, Request, Response

from ipt_api.authz import authorize
from ipt_api.deps import ConnectionDep, PrincipalDep, SettingsDep
from ipt_api.json_route import StrictJsonRoute
from ipt_api.principal import Principal
from ipt_api.webhooks.schemas import (
    DeliveryList,
    DeliveryView,
    WebhookCreate,
    WebhookCreated,
    WebhookEnable,
    WebhookView,
)
from ipt_core.events import webhooks
from ipt_core.fhir.errors import BusinessRuleViolated, FhirError, NotAuthorized, ResourceNotFound
from ipt_core.net import DestinationRefused, check_destination

__all__ = ["SecretsNotConfigured", "webhooks_router"]

_OUTCOME = {"application/fhir+json": {"schema": {"$ref": "#/components/schemas/Resource"}}}
_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    status: {"description": f"{meaning} (OperationOutcome)", "content": _OUTCOME}
    for status, meaning in [
        (400, "Malformed request"),
        (403, "The token's scopes do not allow it"),
        (404, "No such webhook or delivery"),
        (422, "The URL is not an allowed destination"),
    ]
}


class SecretsNotConfigured(FhirError):
    """The service has no key to seal secrets with (IPT_SECRETS_KEYS)."""

    status, code = 503, "exception"


webhooks_router = APIRouter(
    prefix="/ipt/v1/webhooks", tags=["Webhooks"], responses=_ERRORS, route_class=StrictJsonRoute
)


@webhooks_router.post("", status_code=201, summary="Subscribe a URL to events")
async def create_webhook(
    body: WebhookCreate,
    conn: ConnectionDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    request: Request,
) -> WebhookCreated:
    """Create an enabled endpoint; the response holds its signing secret, shown only now.

    The URL must not point into the hospital's network unless IPT_OUTBOUND_ALLOW lists it
    (422): see README, Security.
    """
    _authorize(principal, "create")
    keyring = settings.keyring
    if keyring is None:
        raise SecretsNotConfigured("Webhooks need IPT_SECRETS_KEYS to store their secrets")
    try:
        await check_destination(str(body.url), settings.destination_policy)
    except DestinationRefused as refused:
        raise BusinessRuleViolated(str(refused)) from None
    endpoint, secret = await webhooks.create_endpoint(
        conn,
        url=str(body.url),
        event_types=body.event_types,
        therapist_ref=body.therapist,
        organization_ref=body.organization,
        now=request.app.state.clock(),
        keyring=keyring,
    )
    return WebhookCreated(**WebhookView.of(endpoint).model_dump(), secret=secret)


@webhooks_router.get("", summary="Every webhook subscription")
async def list_webhooks(conn: ConnectionDep, principal: PrincipalDep) -> list[WebhookView]:
    """List endpoints, oldest first (without secrets)."""
    _authorize(principal, "search")
    return [WebhookView.of(endpoint) for endpoint in await webhooks.endpoints(conn)]


@webhooks_router.get("/{webhook_id}", summary="One webhook subscription")
async def read_webhook(
    webhook_id: str, conn: ConnectionDep, principal: PrincipalDep
) -> WebhookView:
    """Read an endpoint (without its secret)."""
    _authorize(principal, "read")
    return WebhookView.of(await _endpoint(conn, webhook_id))


@webhooks_router.patch("/{webhook_id}", summary="Enable or disable a webhook subscription")
async def update_webhook(
    webhook_id: str,
    body: WebhookEnable,
    conn: ConnectionDep,
    principal: PrincipalDep,
    request: Request,
) -> WebhookView:
    """Enabling resets the failure count and makes the queued deliveries due now."""
    _authorize(principal, "update")
    endpoint = await webhooks.set_enabled(conn, webhook_id, body.enabled, request.app.state.clock())
    if endpoint is None:
        raise ResourceNotFound(f"Webhook {webhook_id} is not known")
    return WebhookView.of(endpoint)


@webhooks_router.delete("/{webhook_id}", status_code=204, summary="Delete a subscription")
async def delete_webhook(webhook_id: str, conn: ConnectionDep, principal: PrincipalDep) -> Response:
    """Delete an endpoint and its delivery queue and log."""
    _authorize(principal, "delete")
    if not await webhooks.delete_endpoint(conn, webhook_id):
        raise ResourceNotFound(f"Webhook {webhook_id} is not known")
    return Response(status_code=204)


@webhooks_router.get("/{webhook_id}/deliveries", summary="The delivery log of a subscription")
async def list_deliveries(
    webhook_id: str,
    conn: ConnectionDep,
    principal: PrincipalDep,
    before: Annotated[int | None, Query(ge=1, description="Deliveries older than this id")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> DeliveryList:
    """Deliveries newest first: status, attempts, last response status or error."""
    _authorize(principal, "read")
    await _endpoint(conn, webhook_id)
    records = await webhooks.deliveries_of(conn, webhook_id, before=before, limit=limit)
    return DeliveryList(
        deliveries=[DeliveryView.of(record) for record in records],
        next_before=records[-1].id if len(records) == limit else None,
    )


@webhooks_router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    summary="Send a delivery's event again (same event id)",
)
async def redeliver(
    webhook_id: str,
    delivery_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    conn: ConnectionDep,
    principal: PrincipalDep,
    request: Request,
) -> DeliveryView:
    """Queue the event again, behind what is pending for its course; return the new delivery."""
    _authorize(principal, "update")
    record = await webhooks.redeliver(conn, webhook_id, delivery_id, request.app.state.clock())
    if record is None:
        raise ResourceNotFound(
            f"Delivery {delivery_id} of webhook {webhook_id} is not known or its event expired"
        )
    return DeliveryView.of(record)


async def _endpoint(conn: ConnectionDep, webhook_id: str) -> webhooks.Endpoint:
    endpoint = await webhooks.endpoint(conn, webhook_id)
    if endpoint is None:
        raise ResourceNotFound(f"Webhook {webhook_id} is not known")
    return endpoint


def _authorize(principal: Principal, interaction: str) -> None:
    authorize(principal, "Subscription", interaction)
    if principal.compartment is not None:
        # Webhooks deliver every patient's events: no patient/ token may manage them.
        raise NotAuthorized("Webhooks are not available with patient/ scopes")
