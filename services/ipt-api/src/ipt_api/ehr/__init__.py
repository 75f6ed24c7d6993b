"""`/ipt/v1/ehr`: the EHR endpoints, their sync status and dead letters; `ipt ehr` commands."""
