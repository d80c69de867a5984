"""Apply the farmops SQL package to a database: the same steps ``sql/install.sql`` runs in psql.

Order, all in ONE transaction under an advisory lock (a second migrator waits):

1. ``bootstrap.sql``: pgvector, the two roles, the ``farmops`` schema and the migration ledger;
   from there on everything runs as ``farmops_owner``.
2. ``schema/NNNN_name.sql``: each file once, recorded with its sha256. A file that was
   applied and edited afterwards is refused (OF901) and nothing changes.
3. ``functions/NN_domain/*.sql`` then ``policies/*.sql``: re-applied every time (idempotent),
   in path order (domain folders are numbered, so the load order is their names).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from . import db
from .errors import MigrationError
from .paths import sql_dir as default_sql_dir

LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended('farmops.migrate', 0))"
SCHEMA_NAME = re.compile(r"^[0-9]{4}_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class MigrationFile:
    """One file of ``sql/schema`` with the sha256 of its bytes."""

    path: Path
    sha256: str

    @property
    def filename(self) -> str:
        """The ledger key, e.g. ``0001_tenancy.sql``."""
        return self.path.name


@dataclass
class MigrationReport:
    """What a migrate run did (or, with ``dry_run``, would have done)."""

    applied: list[str] = field(default_factory=list)
    reapplied: list[str] = field(default_factory=list)
    dry_run: bool = False


@dataclass(frozen=True)
class MigrationState:
    """One row of ``farmops migrate --status``."""

    filename: str
    state: str  # 'applied' | 'pending' | 'changed'
    applied_at: object | None


def schema_files(root: Path | None = None) -> list[MigrationFile]:
    """The ordered schema migrations, refusing misnamed or duplicate-numbered files."""
    root = root or default_sql_dir()
    files = sorted((root / "schema").glob("*.sql"))
    seen: dict[str, str] = {}
    result = []
    for path in files:
        if not SCHEMA_NAME.match(path.name):
            raise MigrationError(f"{path.name}: schema migrations must be named NNNN_lowercase_name.sql")
        number = path.name[:4]
        if number in seen:
            raise MigrationError(f"{path.name} and {seen[number]} share the number {number}")
        seen[number] = path.name
        result.append(MigrationFile(path, hashlib.sha256(path.read_bytes()).hexdigest()))
    return result


def idempotent_files(root: Path | None = None) -> list[Path]:
    """``functions/**/*.sql`` then ``policies/**/*.sql``, each tree in path order."""
    root = root or default_sql_dir()
    return sorted((root / "functions").rglob("*.sql")) + sorted((root / "policies").rglob("*.sql"))


def relative_name(path: Path, root: Path | None = None) -> str:
    """``functions/20_credits/reserve.sql``: a file's name as reports and install.sql show it."""
    return path.relative_to(root or default_sql_dir()).as_posix()


def _run_file(conn: psycopg.Connection, path: Path, root: Path) -> None:
    try:
        with db.translated(), conn.cursor() as cur:
            cur.execute(path.read_text(encoding="utf-8"), prepare=False)
    except psycopg.Error as exc:  # not a documented SQLSTATE: name the file that failed
        first = (exc.diag.message_primary or str(exc)).splitlines()[0]
        raise MigrationError(f"{relative_name(path, root)}: {first} [{exc.sqlstate}]") from exc


def migrate(conn: psycopg.Connection, *, dry_run: bool = False, root: Path | None = None) -> MigrationReport:
    """Apply bootstrap, pending migrations, functions and policies in one locked transaction.

    With ``dry_run`` everything runs (so errors surface) and is then rolled back.
    Raises :class:`MigrationError` (or a subclass) and leaves the database unchanged on failure.
    """
    root = root or default_sql_dir()
    migrations = schema_files(root)
    report = MigrationReport(dry_run=dry_run)
    with db.translated(), conn.transaction() as tx:
        conn.execute(LOCK_SQL)
        _run_file(conn, root / "bootstrap.sql", root)
        for mig in migrations:
            pending = conn.execute(
                "SELECT farmops.migration_is_pending(%s, %s)", [mig.filename, mig.sha256]
            ).fetchone()[0]
            if pending:
                _run_file(conn, mig.path, root)
                conn.execute(
                    "INSERT INTO farmops.schema_migrations (filename, sha256) VALUES (%s, %s)",
                    [mig.filename, mig.sha256],
                )
                report.applied.append(mig.filename)
        for path in idempotent_files(root):
            _run_file(conn, path, root)
            report.reapplied.append(relative_name(path, root))
        if dry_run:
            raise psycopg.Rollback(tx)
    return report


def status(conn: psycopg.Connection, root: Path | None = None) -> list[MigrationState]:
    """Every schema migration with its state: applied, pending, or changed since applied."""
    migrations = schema_files(root)
    applied: dict[str, tuple[str, object]] = {}
    with db.translated():
        has_ledger = conn.execute("SELECT to_regclass('farmops.schema_migrations') IS NOT NULL").fetchone()[0]
        if has_ledger:
            for filename, sha, applied_at in conn.execute(
                "SELECT filename, sha256, applied_at FROM farmops.schema_migrations ORDER BY filename"
            ):
                applied[filename] = (sha, applied_at)
        conn.rollback()
    states = []
    for mig in migrations:
        if mig.filename not in applied:
            states.append(MigrationState(mig.filename, "pending", None))
        else:
            sha, applied_at = applied[mig.filename]
            states.append(
                MigrationState(mig.filename, "applied" if sha == mig.sha256 else "changed", applied_at)
            )
    known = {m.filename for m in migrations}
    states.extend(MigrationState(f, "unknown", at) for f, (_, at) in applied.items() if f not in known)
    return states


def render_install_script(root: Path | None = None) -> str:
    """The text of ``sql/install.sql``: the same steps as :func:`migrate`, for psql alone."""
    root = root or default_sql_dir()
    lines = [
        "-- farmops install script for psql. GENERATED by `farmops install-script`; do not edit.",
        '-- Usage: psql -v ON_ERROR_STOP=1 -f sql/install.sql "$DATABASE_URL"',
        "-- Same steps as `farmops migrate`: one transaction, an advisory lock, each schema",
        "-- migration once (recorded with its sha256), then functions and policies re-applied.",
        "\\set ON_ERROR_STOP 1",
        "BEGIN;",
        LOCK_SQL + ";",
        "\\ir bootstrap.sql",
    ]
    for mig in schema_files(root):
        lines += [
            f"SELECT farmops.migration_is_pending('{mig.filename}', '{mig.sha256}') AS pending \\gset",
            "\\if :pending",
            f"\\ir schema/{mig.filename}",
            "INSERT INTO farmops.schema_migrations (filename, sha256)",
            f"VALUES ('{mig.filename}', '{mig.sha256}');",
            "\\endif",
        ]
    lines += [f"\\ir {relative_name(p, root)}" for p in idempotent_files(root)]
    lines += ["COMMIT;", ""]
    return "\n".join(lines)
