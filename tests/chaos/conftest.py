"""Chaos tests print what they measured at the end of the run (errors, recovery times)."""

from __future__ import annotations

import pytest

from tests.chaos.support import FIGURES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the figures of the chaos tests that ran."""
    if not FIGURES:
        return
    terminalreporter.section("chaos figures")
    for test, figures in FIGURES.items():
        measured = ", ".join(f"{name}={value}" for name, value in figures.items())
        terminalreporter.write_line(f"{test}: {measured}")
