"""The EHR sync loops (docs/ehr-sync.md): push queued work, pull new sessions and scores.

The domain (endpoints, capabilities, remote API, mappings, SQL) is in `ipt_core.ehr`.
"""

from ipt_worker.ehr.context import EhrTiming, EndpointSync, timing_from
from ipt_worker.ehr.loop import open_endpoint, register_endpoints, run_ehr_sync, run_endpoint
from ipt_worker.ehr.pull import PullCounts, pull_once
from ipt_worker.ehr.push import push_due, push_item

__all__ = [
    "EhrTiming",
    "EndpointSync",
    "PullCounts",
    "open_endpoint",
    "pull_once",
    "push_due",
    "push_item",
    "register_endpoints",
    "run_ehr_sync",
    "run_endpoint",
    "timing_from",
]
