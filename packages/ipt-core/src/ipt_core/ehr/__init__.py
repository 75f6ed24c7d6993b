"""EHR sync (docs/ehr-sync.md): push what the EHR accepts, pull sessions and PHQ-9 scores.

- `endpoints`: the endpoints file (`IPT_EHR_ENDPOINTS_FILE`), validated at start.
- `capabilities`: what an EHR's CapabilityStatement allows (push set, conditional update).
- `auth`, `remote`: the EHR's REST API with SMART Backend Services / bearer / no auth.
- `push_mapping`, `pull_mapping`, `summary`: resources on their way out and in.
- `listener`: queues push work in the transaction of the write that causes it.
- `repository`: all SQL of the sync tables.

The loops that use these live in `ipt_worker.ehr`.
"""

from ipt_core.ehr.capabilities import Capabilities, parse_capabilities
from ipt_core.ehr.endpoints import (
    EhrEndpoint,
    EndpointsFileError,
    configured_endpoints,
    load_endpoints,
)
from ipt_core.ehr.identifiers import SYNC_SOURCE, ehr_identifier_system
from ipt_core.ehr.listener import EhrPushListener
from ipt_core.ehr.remote import RemoteEhr, ehr_http_client

__all__ = [
    "SYNC_SOURCE",
    "Capabilities",
    "EhrEndpoint",
    "EhrPushListener",
    "EndpointsFileError",
    "RemoteEhr",
    "configured_endpoints",
    "ehr_http_client",
    "ehr_identifier_system",
    "load_endpoints",
    "parse_capabilities",
]
