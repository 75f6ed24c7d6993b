"""Fixtures shared by every test: real PostgreSQL and the API under test."""

from ipt_core.composition import compose

pytest_plugins = [
    "tests.support.database",
    "tests.support.api",
    "tests.integration.ehr_support",  # `sekmet`: one real third-party EHR per session
    "tests.integration.authz_support",  # `signing_key`, `mint`, `secured`: JWT-mode API
]

# Every process composes the layers at start (ipt_core.composition); so does the test session,
# for the tests that search or index without building an app or a worker.
compose()
