"""FHIR Bulk Data Access `$export` (async pattern): kick-off, status, manifest, files, delete."""
