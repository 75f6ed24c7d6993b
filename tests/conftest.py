"""Fixtures shared by every test: real PostgreSQL and the API under test."""

from ipt_core.composition import compose

pytest_plugins = [
    "tests.support.database",
    "tests.support.api",
    "tests.support.tokens",  # `signing_key`: the key the JWT-mode API trusts
    "tests.integration.events_support",  # `receiver`: a real webhook receiver
    "tests.integration.ipt_helpers",  # `clock`, `ipt`: the app on a settable clock
    "tests.integration.ehr_support",  # `sekmet`: one real third-party EHR per session
    "tests.integration.authz_support",  # `mint`, `secured`: JWT-mode API
]

# Every process composes the layers at start (ipt_core.composition); so does the test session,
# for the tests that search or index without building an app or a worker.
compose()
