"""Apply the farmops SQL package to a database: the same steps ``sql/install.sql`` runs in psql.

Order, all in ONE transaction under an advisory lock (a second migrator waits):

1. ``bootstrap.sql``: pgvector, the two roles, the ``farmops`` schema and the migration ledger;
   from there on everything runs as ``farmops_owner``.
2. ``schema/NNNN_name.sql``: each file once, recorded with its sha256. A file that was
   applied and edited afterwards is refused (OF901) and nothing changes, unless
   ``schema/CHECKSUMS`` (the frozen manifest) accepts the ledger's older checksum: then the
   manifest's upgrade file (if any) runs at that file's place in the order, and the ledger row
   takes the current checksum.
3. ``functions/NN_domain/*.sql`` then ``policies/*.sql``: re-applied every time (idempotent),
   in path order (domain folders are numbered, so the load order is their names).

The package version (``farmops.version()``) is handed to the SQL as the transaction-local
setting ``farmops.package_version``; ``functions/00_core/package_version.sql`` records it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from . import db
from .errors import MigrationError
from .paths import sql_dir as default_sql_dir

logger = logging.getLogger(__name__)

LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended('farmops.migrate', 0))"
SCHEMA_NAME = re.compile(r"^[0-9]{4}_[a-z0-9_]+\.sql$")
MANIFEST = "CHECKSUMS"
# A PEP 440 version as pyproject writes it; checked because install.sql quotes it.
VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+!_-]{0,63}$")


@dataclass(frozen=True)
class MigrationFile:
    """One file of ``sql/schema`` with the sha256 of its bytes."""

    path: Path
    sha256: str

    @property
    def filename(self) -> str:
        """The ledger key, e.g. ``0001_tenancy.sql``."""
        return self.path.name


@dataclass(frozen=True)
class AcceptedChecksum:
    """An older content of a frozen migration that a database's ledger may still hold.

    ``upgrade`` (a path under ``schema/``) brings such a database to the current shape;
    ``None`` means the old content made exactly the same objects (``equivalent``).
    """

    filename: str
    sha256: str
    upgrade: str | None
    reason: str


@dataclass(frozen=True)
class Manifest:
    """``schema/CHECKSUMS``: the frozen checksum of every released migration, and accepted old ones."""

    frozen: dict[str, str]
    accepted: list[AcceptedChecksum]

    def accepted_for(self, filename: str) -> list[AcceptedChecksum]:
        """The accepted older checksums of one migration, in manifest order."""
        return [a for a in self.accepted if a.filename == filename]


@dataclass
class MigrationReport:
    """What a migrate run did (or, with ``dry_run``, would have done)."""

    applied: list[str] = field(default_factory=list)
    reapplied: list[str] = field(default_factory=list)
    upgraded: list[str] = field(default_factory=list)
    version: str | None = None
    dry_run: bool = False


@dataclass(frozen=True)
class MigrationState:
    """One row of ``farmops migrate --status``."""

    filename: str
    state: str  # 'applied' | 'pending' | 'changed' | 'upgrade' (accepted old checksum) | 'unknown'
    applied_at: object | None


def package_version() -> str:
    """This package's version (pyproject's ``version``), as ``farmops.version()`` records it."""
    version = importlib.metadata.version("farmops")
    if not VERSION.match(version):
        raise MigrationError(f"unexpected package version {version!r}")
    return version


def read_manifest(root: Path | None = None) -> Manifest:
    """Parse ``schema/CHECKSUMS``; a tree without one (an old release) accepts nothing.

    Lines: ``FILE SHA256`` (frozen), ``FILE SHA256 equivalent # why`` or
    ``FILE SHA256 upgrade PATH # why`` (accepted older content); ``#`` starts a comment.
    """
    path = (root or default_sql_dir()) / "schema" / MANIFEST
    frozen: dict[str, str] = {}
    accepted: list[AcceptedChecksum] = []
    if not path.is_file():
        return Manifest(frozen, accepted)
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line, _, reason = raw.partition("#")
        words = line.split()
        if not words:
            continue
        if len(words) not in (2, 3, 4) or not re.fullmatch(r"[0-9a-f]{64}", words[1]):
            raise MigrationError(f"{MANIFEST}:{number}: expected FILE SHA256 [equivalent | upgrade PATH]")
        if len(words) == 2:
            if words[0] in frozen:
                raise MigrationError(f"{MANIFEST}:{number}: {words[0]} is listed twice")
            frozen[words[0]] = words[1]
        elif words[2:] == ["equivalent"] or (len(words) == 4 and words[2] == "upgrade"):
            if not reason.strip():
                raise MigrationError(f"{MANIFEST}:{number}: an accepted checksum needs a reason after #")
            upgrade = words[3] if len(words) == 4 else None
            accepted.append(AcceptedChecksum(words[0], words[1], upgrade, reason.strip()))
        else:
            raise MigrationError(f"{MANIFEST}:{number}: expected FILE SHA256 [equivalent | upgrade PATH]")
    return Manifest(frozen, accepted)


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


def _accept_old_checksum(
    conn: psycopg.Connection, mig: MigrationFile, old: AcceptedChecksum, root: Path
) -> bool:
    """If the ledger holds ``old``'s checksum: run its upgrade, record the current one. True if so."""
    found = conn.execute(
        "SELECT FROM farmops.schema_migrations WHERE filename = %s AND sha256 = %s",
        [mig.filename, old.sha256],
    ).fetchone()
    if found is None:
        return False
    if old.upgrade:
        _run_file(conn, root / "schema" / old.upgrade, root)
    conn.execute(
        "UPDATE farmops.schema_migrations SET sha256 = %s WHERE filename = %s", [mig.sha256, mig.filename]
    )
    return True


def migrate(conn: psycopg.Connection, *, dry_run: bool = False, root: Path | None = None) -> MigrationReport:
    """Apply bootstrap, pending migrations, functions and policies in one locked transaction.

    With ``dry_run`` everything runs (so errors surface) and is then rolled back.
    Raises :class:`MigrationError` (or a subclass) and leaves the database unchanged on failure.
    """
    root = root or default_sql_dir()
    migrations = schema_files(root)
    manifest = read_manifest(root)
    report = MigrationReport(dry_run=dry_run, version=package_version())
    with db.translated(), conn.transaction() as tx:
        conn.execute(LOCK_SQL)
        conn.execute("SELECT set_config('farmops.package_version', %s, true)", [report.version])
        _run_file(conn, root / "bootstrap.sql", root)
        for mig in migrations:
            for old in manifest.accepted_for(mig.filename):
                if _accept_old_checksum(conn, mig, old, root):
                    report.upgraded.append(mig.filename)
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
        logger.info(
            "migrate%s: %d applied %s, %d files re-applied, version %s",
            " (dry run)" if dry_run else "",
            len(report.applied),
            report.applied,
            len(report.reapplied),
            report.version,
        )
        if dry_run:
            raise psycopg.Rollback(tx)
    return report


def status(conn: psycopg.Connection, root: Path | None = None) -> list[MigrationState]:
    """Every schema migration with its state: applied, pending, or changed since applied."""
    migrations = schema_files(root)
    manifest = read_manifest(root)
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
            if sha == mig.sha256:
                state = "applied"
            elif any(a.sha256 == sha for a in manifest.accepted_for(mig.filename)):
                state = "upgrade"
            else:
                state = "changed"
            states.append(MigrationState(mig.filename, state, applied_at))
    known = {m.filename for m in migrations}
    states.extend(MigrationState(f, "unknown", at) for f, (_, at) in applied.items() if f not in known)
    return states


def installed_version(conn: psycopg.Connection) -> str | None:
    """``farmops.version()`` of the database, or None before the first migrate that records it."""
    if conn.execute("SELECT to_regprocedure('farmops.version()') IS NULL").fetchone()[0]:
        return None
    return conn.execute("SELECT farmops.version()").fetchone()[0]


def up_to_date(states: list[MigrationState], installed: str | None) -> bool:
    """True if nothing is pending, changed or unknown and the recorded version is this package's."""
    return all(s.state == "applied" for s in states) and installed == package_version()


def render_install_script(root: Path | None = None) -> str:
    """The text of ``sql/install.sql``: the same steps as :func:`migrate`, for psql alone."""
    root = root or default_sql_dir()
    manifest = read_manifest(root)
    lines = [
        "-- farmops install script for psql. GENERATED by `farmops install-script`; do not edit.",
        '-- Usage: psql -v ON_ERROR_STOP=1 -f sql/install.sql "$DATABASE_URL"',
        "-- Same steps as `farmops migrate`: one transaction, an advisory lock, each schema",
        "-- migration once (recorded with its sha256), then functions and policies re-applied.",
        "\\set ON_ERROR_STOP 1",
        "BEGIN;",
        LOCK_SQL + ";",
        f"SET LOCAL farmops.package_version = '{package_version()}';",
        "\\ir bootstrap.sql",
    ]
    for mig in schema_files(root):
        for old in manifest.accepted_for(mig.filename):
            lines += [
                "SELECT EXISTS (SELECT FROM farmops.schema_migrations",
                f"WHERE filename = '{mig.filename}' AND sha256 = '{old.sha256}') AS accepted \\gset",
                "\\if :accepted",
                *([f"\\ir schema/{old.upgrade}"] if old.upgrade else []),
                f"UPDATE farmops.schema_migrations SET sha256 = '{mig.sha256}'",
                f"WHERE filename = '{mig.filename}';",
                "\\endif",
            ]
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
