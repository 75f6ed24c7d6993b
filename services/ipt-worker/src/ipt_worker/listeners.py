"""The write listeners every process registers with the FHIR store."""

from __future__ import annotations

from ipt_core.fhir.store import WriteListener

__all__ = ["default_listeners"]


def default_listeners() -> tuple[WriteListener, ...]:
    """The IPT projections, so the worker's write-backs keep projections consistent."""
    from ipt_core.ipt.projections import IptProjections

    return (IptProjections(),)
