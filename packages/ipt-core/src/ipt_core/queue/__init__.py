"""The recompute queue: which courses the status engine must (re)compute, and when."""

from ipt_core.queue._liveness import WorkerLiveness
from ipt_core.queue._recompute import (
    Claim,
    claim_due,
    finish,
    release,
    request_recompute,
    retry_later,
)

__all__ = [
    "Claim",
    "WorkerLiveness",
    "claim_due",
    "finish",
    "release",
    "request_recompute",
    "retry_later",
]
