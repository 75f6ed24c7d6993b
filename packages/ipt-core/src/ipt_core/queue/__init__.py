"""The recompute queue: which courses the status engine must (re)compute, and when."""

from ipt_core.queue._liveness import WorkerLiveness
from ipt_core.queue._recompute import (
    Claim,
    claim_due,
    finish,
    finish_many,
    lock_owned,
    queue_depth,
    release,
    request_recompute,
    retry_later,
    retry_many,
)

__all__ = [
    "Claim",
    "WorkerLiveness",
    "claim_due",
    "finish",
    "finish_many",
    "lock_owned",
    "queue_depth",
    "release",
    "request_recompute",
    "retry_later",
    "retry_many",
]
