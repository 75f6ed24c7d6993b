"""One trace from a FHIR write through the worker's recompute and the event relay to the
webhook request, and no patient data in any span.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_api.app import create_app
from ipt_core.composition import write_listeners
from ipt_core.db.provision import Database
from ipt_worker.recompute import Recomputer
from tests.integration.events_support import WebhookReceiver, running, subscribe, webhook_relay
from tests.integration.ipt_helpers import Clock, clock, enrol, enrolment, patient, record, rows
from tests.support.api import api_settings
from tests.support.waiting import poll_until

__all__ = ["clock"]

_EXPORTER = InMemorySpanExporter()
_PROVIDER = TracerProvider()
_PROVIDER.add_span_processor(SimpleSpanProcessor(_EXPORTER))


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    """Spans of this module's tests (the process-wide provider can be set only once)."""
    trace.set_tracer_provider(_PROVIDER)
    return _EXPORTER


@pytest.fixture
async def traced(
    db: AsyncEngine, clock: Clock, spans: InMemorySpanExporter
) -> AsyncIterator[httpx.AsyncClient]:
    spans.clear()
    app = create_app(api_settings(), database=Database(db), clock=clock, tracer_provider=_PROVIDER)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


async def test_one_trace_from_write_to_webhook(
    traced: httpx.AsyncClient,
    db: AsyncEngine,
    clock: Clock,
    spans: InMemorySpanExporter,
    receiver: WebhookReceiver,
) -> None:
    course_id = await enrol(traced, enrolment(await patient(traced)))
    worker = Recomputer(db, clock=clock, listeners=write_listeners())
    while await worker.run_once():
        pass
    spans.clear()
    already = len(await rows(db, "outbox"))

    await record(traced, course_id, start="2026-01-12T09:00:00Z")
    (request,) = [
        s
        for s in spans.get_finished_spans()
        if s.name == "POST /ipt/v1/courses/{course_id}/sessions"
    ]
    trace_id = request.context.trace_id
    assert await worker.run_once() == 1
    await worker.close()
    (recompute,) = [s for s in spans.get_finished_spans() if s.name == "recompute course"]
    assert recompute.context.trace_id == trace_id
    events = await rows(db, "outbox", "TRUE ORDER BY seq")
    from_recompute = [e for e in events[already:] if e.type.startswith("ipt.")]
    assert from_recompute  # the session changed the status
    assert all(e.traceparent.split("-")[1] == f"{trace_id:032x}" for e in from_recompute)

    await subscribe(db, receiver, event_types=["ipt.course.status.changed"])
    wanted = {e.id for e in from_recompute if e.type == "ipt.course.status.changed"}
    async with running(webhook_relay(db)):
        await poll_until(lambda: wanted <= receiver.accepted_ids(), what="the webhook")
    (delivered,) = [r for r in receiver.receipts if r.envelope["id"] in wanted]
    assert delivered.headers["traceparent"].split("-")[1] == f"{trace_id:032x}"
    deliveries = [s for s in spans.get_finished_spans() if s.name == "webhook delivery"]
    assert any(d.context.trace_id == trace_id for d in deliveries)


async def test_spans_carry_route_templates_not_identifiers(
    traced: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    mrn = "MRN-SECRET-4711"
    created = await traced.post(
        "/fhir/Patient",
        json={"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": mrn}]},
        headers={"Content-Type": "application/fhir+json"},
    )
    patient_id = created.json()["id"]
    await traced.get(f"/fhir/Patient/{patient_id}")
    await traced.get(f"/fhir/Patient?identifier=urn:mrn|{mrn}")
    exported = spans.get_finished_spans()
    assert {s.name for s in exported} >= {"GET /fhir/Patient/{id}", "POST /fhir/Patient"}
    for span in exported:
        rendered = f"{span.name} {dict(span.attributes or {})}"
        assert mrn not in rendered
        assert patient_id not in rendered


async def test_each_ehr_request_is_a_span_naming_the_host_only(
    spans: InMemorySpanExporter,
) -> None:
    from ipt_core.ehr.endpoints import parse_endpoints
    from ipt_core.ehr.remote import RemoteEhr, ehr_http_client
    from ipt_core.net.destinations import DestinationPolicy

    def ehr(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset"})

    entry = {
        "name": "traced-ehr",
        "base_url": "https://ehr.example.org/fhir",
        "auth": {"type": "none"},
        "patient_identifier_system": "urn:x",
    }
    endpoint = parse_endpoints({"endpoints": [entry]}, {})[0]
    spans.clear()
    async with ehr_http_client(
        timeout_s=5, destinations=DestinationPolicy(), transport=httpx.MockTransport(ehr)
    ) as http:
        await RemoteEhr(endpoint, http).search("Patient", {"identifier": "urn:x|MRN-SECRET"})
    [span] = [s for s in spans.get_finished_spans() if s.name == "EHR GET"]
    attributes = dict(span.attributes or {})
    assert attributes["server.address"] == "ehr.example.org"
    assert attributes["ipt.ehr.endpoint"] == "traced-ehr"
    assert attributes["http.response.status_code"] == 200
    assert "MRN-SECRET" not in repr(attributes)
    assert not any("Patient" in str(value) for value in attributes.values())


async def test_unserved_types_do_not_name_spans(
    traced: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    # A client-chosen type would make one span name (and metric series) per value.
    answer = await traced.get("/fhir/NotAType-4711/123")
    assert answer.status_code == 404
    names = {s.name for s in spans.get_finished_spans() if s.kind == trace.SpanKind.SERVER}
    assert not any("NotAType" in name for name in names)
    assert names == {"GET /fhir/{type}/{id}"}
