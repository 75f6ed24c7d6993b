"""`ipt-worker`: the status engine's recompute loop, the event relay and the EHR sync."""

from __future__ import annotations

import os
import sys

from ipt_core.ehr import EndpointsFileError, configured_endpoints
from ipt_worker.serve import serve
from ipt_worker.settings import WorkerSettings

__all__ = ["main"]


def main() -> None:
    """Run the worker until SIGINT or SIGTERM."""
    settings = WorkerSettings()
    try:  # a bad endpoints file stops the worker here, naming the entry and field
        endpoints = configured_endpoints(settings.ehr_endpoints_file, os.environ)
    except EndpointsFileError as error:
        sys.exit(f"IPT_EHR_ENDPOINTS_FILE: {error}")
    serve(settings, endpoints)


if __name__ == "__main__":
    main()
