"""FHIR Bulk Data `$export` (docs/analytics.md): jobs, their NDJSON chunks, and what they select.

All SQL of the export tables is in `_repository.py`.

- `ExportRequest`, `create_export`, `find_export`, `delete_export`, `output_files`,
  `read_chunk`, `has_rows` (the API: kick-off, status, manifest, download, delete).
- `claim_export`, `export_step`, `fail_export`, `purge_expired` (the worker).
- `COMPARTMENT_PARAMS`, `group_patients`, `parse_type_filter`, `selection` (which
  resources an export holds, keyset-paged).
"""

from ipt_core.bulk._jobs import ExportJob, ExportRequest, OutputFile
from ipt_core.bulk._repository import (
    claim_export,
    create_export,
    delete_export,
    find_export,
    has_rows,
    output_files,
    purge_expired,
    read_chunk,
)
from ipt_core.bulk._selection import (
    COMPARTMENT_PARAMS,
    group_patients,
    parse_type_filter,
    selection,
)
from ipt_core.bulk._steps import StepResult, export_step, fail_export

__all__ = [
    "COMPARTMENT_PARAMS",
    "ExportJob",
    "ExportRequest",
    "OutputFile",
    "StepResult",
    "claim_export",
    "create_export",
    "delete_export",
    "export_step",
    "fail_export",
    "find_export",
    "group_patients",
    "has_rows",
    "output_files",
    "parse_type_filter",
    "purge_expired",
    "read_chunk",
    "selection",
]
