"""The write listeners every process registers with the FHIR store."""

from __future__ import annotations

from ipt_core.fhir.store import WriteListener

__all__ = ["default_listeners"]


def default_listeners() -> tuple[WriteListener, ...]:
    """The IPT projections, then the outbox's `fhir.resource.changed` event of each write.

    Projections come first: an IPT rule they refuse aborts the write before an event exists.
    """
    from ipt_core.events import OutboxListener
    from ipt_core.ipt.projections import IptProjections

    return (IptProjections(), OutboxListener())
