"""What every benchmark shares: the embedded server, fresh databases, the machine line, plain tables.

The benchmarks (``bench_reserve``, ``bench_search``, ``bench_fixed``) each measure side by side in
one process; ``bench/run.py`` runs them one after the other on one server and prints one table.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import os
import platform
import re
import subprocess
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

import psycopg
from psycopg import sql

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from farmops_client import embedded  # noqa: E402
from farmops_client import migrate as migrations  # noqa: E402
from farmops_client.tenancy import create_app_login  # noqa: E402

APP_LOGIN = "farmops_bench_app"
DATA_DIR = REPO / ".tmp" / "bench-pg"
RESULTS = REPO / "bench" / "results"


def log(msg: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    print(msg, file=sys.stderr, flush=True)


def serve(data_dir: Path = DATA_DIR) -> tuple[str, int]:
    """The embedded server (socket directory, port), stopped when this process exits."""
    return embedded.serve(data_dir, stop_at_exit=True)


def dsn(host: str, port: int, user: str, dbname: str) -> str:
    """A libpq URI over the Unix socket."""
    return f"postgresql://{user}@/{dbname}?host={host}&port={port}"


def fresh_database(host: str, port: int, prefix: str, settings: dict[str, str] | None = None) -> str:
    """A new database with farmops migrated (``settings`` are session settings for the install,
    e.g. ``farmops.embedding_dimension``) and the application login."""
    dbname = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn(host, port, "postgres", "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    with psycopg.connect(dsn(host, port, "postgres", dbname), autocommit=True) as conn:
        for name, value in (settings or {}).items():
            conn.execute("SELECT set_config(%s, %s, false)", [name, value])
        migrations.migrate(conn)
        create_app_login(conn, APP_LOGIN)
        # The benches reserve made-up models, and unknown models fail closed (OF410): a default price.
        conn.execute("SELECT farmops.set_model_price('*', 1000, 4000, p_source => 'bench default')")
    return dbname


def drop_database(host: str, port: int, dbname: str) -> None:
    """Drop a bench database (its sessions too)."""
    with psycopg.connect(dsn(host, port, "postgres", "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))


def machine(host: str, port: int) -> list[str]:
    """Lines describing where and on what this ran: date, commit, CPU, cores, RAM, load, PostgreSQL."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    with psycopg.connect(dsn(host, port, "postgres", "postgres")) as conn:
        s = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN ('server_version', 'fsync', "
                "'synchronous_commit', 'shared_buffers', 'wal_sync_method', 'block_size')"
            ).fetchall()
        )
        vector = conn.execute(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
        ).fetchone()
    rev = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    buffers_mib = int(s.get("shared_buffers", 0)) * int(s.get("block_size", 8192)) / 1024**2
    return [
        f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC}; commit {rev.stdout.strip() or '?'}",
        f"machine: {cpu}, {os.cpu_count()} cores visible, {ram:.0f} GiB RAM, load average {load} "
        f"(1/5/15 min); {platform.system()} {platform.release()}; Python {platform.python_version()}",
        f"PostgreSQL {s.get('server_version')} (embedded, Unix socket), pgvector "
        f"{vector[0] if vector else '?'}: fsync={s.get('fsync')}, "
        f"synchronous_commit={s.get('synchronous_commit')}, "
        f"wal_sync_method={s.get('wal_sync_method')}, shared_buffers={buffers_mib:.0f} MiB",
    ]


def table(header: Sequence[str], rows: Sequence[Sequence[str]], right: bool = True) -> list[str]:
    """A plain-text table: the header, a rule, the rows (every cell right-aligned but the first)."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 or not right else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


def quantile(xs: Sequence[float], q: float) -> float:
    """The q-quantile by nearest rank (NaN for no samples)."""
    s = sorted(xs)
    if not s:
        return float("nan")
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def git_show(rev: str, path: str) -> str | None:
    """A file as it was at ``rev`` (None if git or the revision is not there)."""
    out = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:{path}"], capture_output=True, text=True)
    return out.stdout if out.returncode == 0 else None


def load_functions_into(conn: psycopg.Connection, schema: str, sources: Sequence[str]) -> list[str]:
    """Create the functions of ``sources`` (SQL files of sql/functions, e.g. as of an earlier
    revision; files of function definitions only) in ``schema`` instead of farmops, as the
    package owner: every call between the
    functions these files define goes to the copies, every other name stays farmops'. Returns the
    names moved. Side by side with the installed versions, in one database."""
    names = sorted(
        {m for src in sources for m in re.findall(r"CREATE OR REPLACE FUNCTION farmops\.(\w+)", src)},
        key=len,
        reverse=True,
    )
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    conn.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION farmops_owner").format(sql.Identifier(schema)))
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO farmops_app").format(sql.Identifier(schema)))
    # The install's search_path (pgvector's schema between pg_catalog and pg_temp) for SET ... FROM CURRENT.
    path = conn.execute(
        "SELECT n.nspname FROM pg_extension AS e JOIN pg_namespace AS n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'vector'"
    ).fetchone()[0]
    conn.execute(sql.SQL("SET search_path = pg_catalog, {}, pg_temp").format(sql.Identifier(path)))
    # pgvector's own settings (hnsw.*) in SET clauses exist once its library is loaded.
    conn.execute("LOAD 'vector'")
    conn.execute("SET ROLE farmops_owner")
    try:
        for src in sources:
            for name in names:
                src = re.sub(rf"\bfarmops\.{name}\b", f"{schema}.{name}", src)
            conn.execute(src)
    finally:
        conn.execute("RESET ROLE")
        conn.execute("RESET search_path")
    conn.execute(
        sql.SQL("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {} TO farmops_app").format(sql.Identifier(schema))
    )
    return names


def write_result(name: str, text: str) -> Path:
    """Write ``bench/results/<name>`` and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(text.rstrip("\n") + "\n")
    return path
