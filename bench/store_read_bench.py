"""Read SQL of the resource store: SQLAlchemy Core against raw asyncpg, side by side.

Times the SQL part of a read by id, a vread and a search page query (`Encounter?subject=…`)
on one autocommit connection, as the API reads (docs/architecture.md#read-path): through the
store's Core functions, and through the asyncpg connection under SQLAlchemy's pool with the
same SQL, prepared once. Run: `python -m bench.store_read_bench [--reads N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from bench.dataset import course_resources, ident
from bench.embedded_db import migrated_engine
from ipt_core.composition import compose
from ipt_core.fhir import _repository as rows
from ipt_core.fhir.bulk import bulk_load
from ipt_core.fhir.search import page_statement, parse_search, run_search, search_runner, sort_plan

_DATA = Path(".bench") / "pg-store-read"
_PATIENTS = 500


def main() -> None:
    """Seed, then time each read both ways."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reads", type=int, default=5000)
    asyncio.run(_main(parser.parse_args().reads))


async def _main(reads: int) -> None:
    compose()
    async with migrated_engine("pg-store-read", pool_size=1) as engine:
        async with engine.begin() as conn:
            resources = (r for n in range(_PATIENTS) for r in course_resources(n, sessions=10))
            await bulk_load(conn, resources, now=datetime.now(UTC), validate=False)
        ids = [ident("patient", n) for n in range(_PATIENTS)]
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await _compare(conn, ids, reads)


async def _compare(conn: AsyncConnection, ids: list[str], reads: int) -> None:
    driver: Any = (await conn.get_raw_connection()).driver_connection
    dialect = conn.dialect
    read_sql = str(rows._CURRENT.compile(dialect=dialect))
    vread_sql = str(rows._VERSION.compile(dialect=dialect))

    current, version = rows._CURRENT, rows._VERSION

    async def core_read(n: int) -> object:
        params = {"type": "Patient", "id": ids[n % len(ids)]}
        return (await conn.execute(current, params)).first()

    async def raw_read(n: int) -> object:
        return await driver.fetchrow(read_sql, "Patient", ids[n % len(ids)])

    async def core_vread(n: int) -> object:
        params = {"type": "Patient", "id": ids[n % len(ids)], "version": 1}
        return (await conn.execute(version, params)).first()

    async def raw_vread(n: int) -> object:
        return await driver.fetchrow(vread_sql, "Patient", ids[n % len(ids)], 1)

    async def store_read(n: int) -> object:  # the store's read: raw on autocommit
        return await rows.current(conn, "Patient", ids[n % len(ids)])

    def query(n: int) -> Any:
        criteria = [("subject", f"Patient/{ids[n % len(ids)]}"), ("_count", "20")]
        return parse_search("Encounter", criteria)

    async def core_search(n: int) -> object:
        return await run_search(await search_runner(conn), query(n))

    async def core_page(n: int) -> object:
        return list(await conn.execute(page_statement(query(n), sort_plan(query(n)), None)))

    async def raw_page(n: int) -> object:
        compiled = page_statement(query(n), sort_plan(query(n)), None).compile(dialect=dialect)
        values = [compiled.params[name] for name in compiled.positiontup or ()]
        return await driver.fetch(str(compiled), *values)

    print(f"load average {os.getloadavg()[0]:.1f}; {reads} calls each, one connection")
    for label, core, raw in (
        ("read by id", core_read, raw_read),
        ("vread", core_vread, raw_vread),
        ("search page", core_page, raw_page),
        ("store.read", store_read, raw_read),
    ):
        core_us = await _time(core, reads)
        raw_us = await _time(raw, reads)
        print(f"{label:12} Core {core_us:7.1f} µs   raw asyncpg {raw_us:7.1f} µs", flush=True)
    print(f"{'run_search':12} Core {await _time(core_search, reads // 5):7.1f} µs (whole search)")


async def _time(call: Callable[[int], Awaitable[object]], count: int) -> float:
    for n in range(50):  # warm: statements prepared, caches filled
        await call(n)
    started = time.perf_counter()
    for n in range(count):
        await call(n)
    return (time.perf_counter() - started) * 1e6 / count


if __name__ == "__main__":
    main()
