"""The write listeners every process registers with the FHIR store."""

from __future__ import annotations

from ipt_core.fhir.store import WriteListener

__all__ = ["default_listeners"]


def default_listeners() -> tuple[WriteListener, ...]:
    """The IPT projections, EHR push work, then the outbox's `fhir.resource.changed` event.

    Projections come first: an IPT rule they refuse aborts the write before an event exists,
    and the EHR listener reads the session links they write.
    """
    from ipt_core.ehr import EhrPushListener
    from ipt_core.events import OutboxListener
    from ipt_core.ipt.projections import IptProjections

    return (IptProjections(), EhrPushListener(), OutboxListener())
