"""The composition root: how the FHIR store, the IPT model and the events are put together.

Lower layers know nothing of the ones above them (docs/architecture.md#layers-and-packages):
the FHIR store serves FHIR, the outbox writes events, and this module adds the IPT parts to
both — the IPT search parameters, the course partitioning of events, the IPT projections and
the EHR push work as write listeners. Every process (API, worker, command line, tests) builds
its store's listeners here, so they are the same everywhere.
"""

from __future__ import annotations

from ipt_core.ehr import EhrPushListener
from ipt_core.events import OutboxListener
from ipt_core.fhir.registry import register_search_params
from ipt_core.fhir.store import WriteListener
from ipt_core.ipt.partitions import course_partition_key
from ipt_core.ipt.projections import IptProjections
from ipt_core.ipt.search_params import IPT_SEARCH_PARAMS

__all__ = ["compose", "write_listeners"]


def compose() -> None:
    """Serve the IPT search parameters (idempotent; call before serving or searching)."""
    for resource_type, params in IPT_SEARCH_PARAMS.items():
        register_search_params(resource_type, *params)


def write_listeners(*extra: WriteListener) -> tuple[WriteListener, ...]:
    """The listeners of every resource write, in order, with `extra` ones last.

    The IPT projections come first: an IPT rule they refuse aborts the write before an event
    exists, and the EHR push listener reads the session links they write. Then the outbox's
    `fhir.resource.changed` event, partitioned by course. Each listener reads the write's
    `cause` (`WriteCause`): the projections skip the status engine's write-backs, the outbox
    records every write.
    """
    compose()
    return (
        IptProjections(),
        EhrPushListener(),
        OutboxListener(course_partition_key),
        *extra,
    )
