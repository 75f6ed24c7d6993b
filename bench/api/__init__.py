"""`make bench`: this service, a peer FHIR server and the bare stack, driven by wrk in one run."""
