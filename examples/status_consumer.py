#!/usr/bin/env python3
"""Keep a SQLite table of every IPT course's current status: snapshot, then the event feed.

The recipe (README "Analytics", docs/analytics.md):

1. Page through `GET /ipt/v1/statuses` and upsert every item. Every page carries the same
   `feed_after`.
2. Remember `feed_after`, then read `GET /ipt/v1/events?after=<feed_after>` (or the SSE
   stream with `Last-Event-ID`) and upsert the status of each `ipt.course.status.changed`
   event. Store the feed position with the rows, in one transaction.
3. Upsert only when the incoming `version` is newer than the stored one: the feed may
   repeat a change the snapshot already showed, and that is how it is skipped.

Usage:
    python examples/status_consumer.py --base http://127.0.0.1:8000 --db statuses.sqlite
    (add --token <bearer token> when the API checks tokens; --until-idle to stop when caught up)

Needs only `httpx` besides the standard library.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import httpx

__all__ = ["StatusConsumer", "main"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS course_status (
    course_id  TEXT PRIMARY KEY,
    version    INTEGER NOT NULL,
    phase      TEXT NOT NULL,
    engagement TEXT,
    status     TEXT NOT NULL           -- the status fields as JSON
);
CREATE TABLE IF NOT EXISTS feed_cursor (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    after INTEGER NOT NULL             -- the last feed position applied
);
"""
STATUS_CHANGED = "ipt.course.status.changed"
# Keys that come with a status but are not status fields.
_NOT_STATUS = frozenset({"version", "computed_at", "previous_phase", "previous_engagement"})


class StatusConsumer:
    """Applies the snapshot and then the feed to a SQLite database."""

    def __init__(self, http: httpx.Client, db: sqlite3.Connection, *, page_size: int = 500) -> None:
        """Consume from `http` (its base URL is the API's) into `db`."""
        self.http = http
        self.db = db
        self.page_size = page_size
        self.applied: list[tuple[str, int]] = []  # (course, version) upserts, in order
        self.skipped = 0  # changes seen again (already applied): skipped by version
        self.after_page: Callable[[], None] = lambda: None  # a hook (tests slow it down)
        db.executescript(SCHEMA)

    def cursor(self) -> int | None:
        """The stored feed position, or None before the snapshot was applied."""
        row = self.db.execute("SELECT after FROM feed_cursor WHERE id = 1").fetchone()
        return None if row is None else int(row[0])

    def snapshot(self) -> int:
        """Apply every page of the snapshot; store and return its `feed_after`."""
        url: str | None = f"/ipt/v1/statuses?limit={self.page_size}"
        feed_after = 0
        while url is not None:
            page = self._get(url)
            with self.db:
                for item in page["items"]:
                    self.apply(item["course_id"], item["status"])
            feed_after, url = int(page["feed_after"]), page["next"]
            self.after_page()
        with self.db:  # only now is the snapshot complete: a crash before redoes it
            self._save_cursor(feed_after)
        return feed_after

    def follow(self, *, wait_s: float = 25, until_idle: bool = False) -> None:
        """Apply the feed from the stored position, forever (or until a quiet poll)."""
        while True:
            after = self.cursor() or 0
            page = self._get(
                "/ipt/v1/events",
                params={"after": after, "types": STATUS_CHANGED, "limit": 500, "wait": wait_s},
            )
            with self.db:  # rows and position together: a crash never skips or half-applies
                for event in page["events"]:
                    self.apply(event["partitionkey"], event["data"])
                self._save_cursor(int(page["next_after"]))
            if until_idle and not page["events"]:
                return

    def apply(self, course_id: str, status: dict[str, Any]) -> bool:
        """Upsert a status unless the stored one is as new or newer; True when applied."""
        version = status.get("version")
        if version is None:  # an event from before statuses carried versions
            return False
        fields = {k: v for k, v in status.items() if k not in _NOT_STATUS}
        changed = self.db.execute(
            "INSERT INTO course_status (course_id, version, phase, engagement, status) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (course_id) DO UPDATE SET "
            "version = excluded.version, phase = excluded.phase, "
            "engagement = excluded.engagement, status = excluded.status "
            "WHERE excluded.version > course_status.version",
            (course_id, version, fields["phase"], fields["engagement"], json.dumps(fields)),
        ).rowcount
        if changed:
            self.applied.append((course_id, int(version)))
        else:
            self.skipped += 1
        return bool(changed)

    def run(self) -> None:
        """Snapshot once (when no position is stored yet), then follow the feed."""
        if self.cursor() is None:
            self.snapshot()
        self.follow()

    def _save_cursor(self, after: int) -> None:
        self.db.execute(
            "INSERT INTO feed_cursor (id, after) VALUES (1, ?) "
            "ON CONFLICT (id) DO UPDATE SET after = excluded.after",
            (after,),
        )

    def _get(self, url: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        for attempt in range(5):
            response = self.http.get(url, params=params)
            if response.status_code < 500:
                break
            time.sleep(2**attempt)  # the service is restarting: back off and retry
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


def main() -> None:
    """Run the consumer from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="http://127.0.0.1:8000", help="the API's base URL")
    parser.add_argument("--db", default="statuses.sqlite", help="the SQLite file to keep")
    parser.add_argument("--token", help="a bearer token with CarePlan search scope")
    parser.add_argument("--until-idle", action="store_true", help="stop once caught up")
    args = parser.parse_args()
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    with httpx.Client(base_url=args.base, headers=headers, timeout=60) as http:
        consumer = StatusConsumer(http, sqlite3.connect(args.db))
        if consumer.cursor() is None:
            consumer.snapshot()
        consumer.follow(wait_s=0 if args.until_idle else 25, until_idle=args.until_idle)


if __name__ == "__main__":
    main()
