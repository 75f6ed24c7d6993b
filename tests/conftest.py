"""Fixtures shared by every test: real PostgreSQL and the API under test."""

pytest_plugins = [
    "tests.support.database",
    "tests.support.api",
    "tests.integration.ehr_support",  # `sekmet`: one real third-party EHR per session
]
