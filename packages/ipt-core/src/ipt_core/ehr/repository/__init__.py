"""The EHR sync tables' one repository: all their SQL, one module per job (docs/ehr-sync.md).

- `_endpoints.py`: `ehr_endpoint`, the endpoints of the endpoints file and their last outcome;
- `_push_queue.py`: `ehr_push_item` as work to do (enqueue, lease, finish, back off, count);
- `_dead_letters.py`: the `ehr_push_item` rows an EHR refused, listed and retried;
- `_remotes.py`: `ehr_remote` (what each EHR calls our resources) and `ehr_watermark` (pulls).
"""

from ipt_core.ehr.repository._dead_letters import (
    DeadLetter,
    dead_letter,
    dead_letters,
    retry_dead_letter,
)
from ipt_core.ehr.repository._endpoints import (
    EndpointRow,
    any_configured_endpoint,
    endpoint_row,
    record_endpoint_error,
    record_endpoint_success,
    set_capabilities,
    sync_endpoints,
)
from ipt_core.ehr.repository._push_queue import (
    PushItem,
    claim_push_items,
    enqueue_push,
    finish_push_item,
    queue_counts,
    reschedule_push_item,
)
from ipt_core.ehr.repository._remotes import (
    RemoteRef,
    local_id_of,
    remember_remote,
    remote_of,
    set_watermark,
    watermark_of,
)

__all__ = [
    "DeadLetter",
    "EndpointRow",
    "PushItem",
    "RemoteRef",
    "any_configured_endpoint",
    "claim_push_items",
    "dead_letter",
    "dead_letters",
    "endpoint_row",
    "enqueue_push",
    "finish_push_item",
    "local_id_of",
    "queue_counts",
    "record_endpoint_error",
    "record_endpoint_success",
    "remember_remote",
    "remote_of",
    "reschedule_push_item",
    "retry_dead_letter",
    "set_capabilities",
    "set_watermark",
    "sync_endpoints",
    "watermark_of",
]
