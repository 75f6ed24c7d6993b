"""`DATABASE_URL`: any PostgreSQL URL, by host or by Unix socket; anything else refused
without echoing it (it may hold a password)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from ipt_core.db.embedded import RunningServer
from ipt_core.settings import CoreSettings


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://ipt:secret@db.hospital.example:5432/ipt",
        "postgresql+asyncpg://ipt@/ipt?host=/run/postgresql",
        RunningServer(5432, Path("/var/lib/ipt data/postgres"), started_here=True).url("ipt"),
    ],
)
def test_postgresql_urls_are_taken(url: str) -> None:
    assert CoreSettings(DATABASE_URL=url).database_url == url


@pytest.mark.parametrize(
    "url", ["mysql://ipt:hunter2@db/ipt", "hunter2 is not a url", "sqlite:///hunter2.db"]
)
def test_other_urls_are_refused_without_being_echoed(url: str) -> None:
    with pytest.raises(ValidationError) as refused:
        CoreSettings(DATABASE_URL=url)
    assert "DATABASE_URL" in str(refused.value)
    assert "hunter2" not in str(refused.value)


def test_the_embedded_server_is_reached_by_its_socket() -> None:
    url = make_url(RunningServer(5433, Path("/data/pg"), started_here=False).url("ipt"))
    assert (url.host, url.database, dict(url.query)) == (
        None,
        "ipt",
        {"host": "/data/pg", "port": "5433"},
    )
