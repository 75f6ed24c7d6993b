"""Fixtures shared by every test: real PostgreSQL and the API under test."""

pytest_plugins = ["tests.support.database", "tests.support.api"]
