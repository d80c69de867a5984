"""Migrations: the runner and install.sql apply the same package, once, under a lock."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest
from support import REPO, concurrently, psql

from farmops_client import embedded
from farmops_client import migrate as migrations
from farmops_client.errors import MigrationChanged, PgvectorMissing, UntrustedSchema

SQL = REPO / "sql"


def _ledger(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT filename, sha256, applied_at FROM farmops.schema_migrations ORDER BY filename"
        ).fetchall()


def _copy_sql(tmp_path: Path) -> Path:
    root = tmp_path / "sql"
    shutil.copytree(SQL, root)
    return root


def test_migrate_on_empty_database_applies_every_file(empty_db):
    dsn = empty_db()
    with psycopg.connect(dsn) as conn:
        report = migrations.migrate(conn)
    expected = [m.filename for m in migrations.schema_files()]
    assert report.applied == expected
    assert [(f, s) for f, s, _ in _ledger(dsn)] == [(m.filename, m.sha256) for m in migrations.schema_files()]
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT to_regclass('farmops.farms') IS NOT NULL").fetchone()[0]


def test_migrate_again_is_a_no_op(empty_db):
    dsn = empty_db()
    with psycopg.connect(dsn) as conn:
        migrations.migrate(conn)
    before = _ledger(dsn)
    with psycopg.connect(dsn) as conn:
        report = migrations.migrate(conn)
    assert report.applied == []
    assert _ledger(dsn) == before


def test_dry_run_changes_nothing(empty_db):
    dsn = empty_db()
    with psycopg.connect(dsn) as conn:
        report = migrations.migrate(conn, dry_run=True)
        assert report.applied == [m.filename for m in migrations.schema_files()]
        assert conn.execute("SELECT to_regnamespace('farmops')").fetchone()[0] is None


def test_edited_applied_migration_is_refused_and_nothing_changes(empty_db, tmp_path):
    dsn = empty_db()
    root = _copy_sql(tmp_path)
    with psycopg.connect(dsn) as conn:
        migrations.migrate(conn, root=root)
    first = sorted((root / "schema").glob("*.sql"))[0]
    first.write_text(first.read_text() + "\nCREATE TABLE farmops.sneaky (id integer);\n")
    (root / "schema" / "9999_later.sql").write_text("CREATE TABLE farmops.later_table (id integer);\n")
    with psycopg.connect(dsn) as conn, pytest.raises(MigrationChanged) as excinfo:
        migrations.migrate(conn, root=root)
    assert first.name in str(excinfo.value)
    assert excinfo.value.sqlstate == "OF901"
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT to_regclass('farmops.later_table')").fetchone()[0] is None
        assert conn.execute("SELECT to_regclass('farmops.sneaky')").fetchone()[0] is None


def test_broken_migration_rolls_back_everything(empty_db, tmp_path):
    dsn = empty_db()
    root = _copy_sql(tmp_path)
    (root / "schema" / "9999_broken.sql").write_text("CREATE TABLE farmops.half (id integer);\nSELEC 1;\n")
    with psycopg.connect(dsn) as conn, pytest.raises(migrations.MigrationError) as excinfo:
        migrations.migrate(conn, root=root)
    assert "9999_broken.sql" in str(excinfo.value)
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT to_regnamespace('farmops')").fetchone()[0] is None


def test_misnamed_migration_is_refused(tmp_path):
    root = _copy_sql(tmp_path)
    (root / "schema" / "12_bad-name.sql").write_text("SELECT 1;\n")
    with pytest.raises(migrations.MigrationError, match="NNNN_lowercase_name"):
        migrations.schema_files(root)


def test_concurrent_migrators_wait_and_apply_each_file_once(empty_db):
    dsn = empty_db()
    conns = [psycopg.connect(dsn) for _ in range(4)]
    try:
        reports = concurrently([lambda c=c: migrations.migrate(c) for c in conns])
    finally:
        for conn in conns:
            conn.close()
    assert [r for r in reports if isinstance(r, Exception)] == []
    files = [m.filename for m in migrations.schema_files()]
    applied = sorted(f for r in reports for f in r.applied)
    assert applied == sorted(files), "every file applied by exactly one migrator"
    assert [f for f, _, _ in _ledger(dsn)] == files


def test_missing_pgvector_is_a_clear_error(empty_db, tmp_path):
    dsn = empty_db()
    root = _copy_sql(tmp_path)
    bootstrap = root / "bootstrap.sql"
    # Ask the real catalog for an extension this server does not have.
    bootstrap.write_text(
        bootstrap.read_text().replace("name = 'vector'", "name = 'vector_not_on_this_server'")
    )
    with psycopg.connect(dsn) as conn, pytest.raises(PgvectorMissing, match="pgvector"):
        migrations.migrate(conn, root=root)


def test_status_reports_pending_applied_and_changed(empty_db, tmp_path):
    dsn = empty_db()
    root = _copy_sql(tmp_path)
    with psycopg.connect(dsn) as conn:
        assert {s.state for s in migrations.status(conn, root)} == {"pending"}
        migrations.migrate(conn, root=root)
        assert {s.state for s in migrations.status(conn, root)} == {"applied"}
    first = sorted((root / "schema").glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    with psycopg.connect(dsn) as conn:
        states = {s.filename: s.state for s in migrations.status(conn, root)}
    assert states[first.name] == "changed"


def test_install_sql_is_up_to_date():
    assert (SQL / "install.sql").read_text() == migrations.render_install_script()


def _schema_dump(dsn: str) -> str:
    out = subprocess.run(
        [str(embedded.bin_dir() / "pg_dump"), "--schema-only", "--schema=farmops", "--schema=public", dsn],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    # pg_dump 17.6+/18 writes a random \restrict key per dump; it is not schema.
    return re.sub(r"^\\(un)?restrict .*$", "", out, flags=re.M)


def test_install_sql_and_migrate_give_the_same_schema(empty_db):
    via_psql, via_runner = empty_db(), empty_db()
    proc = psql(via_psql, SQL / "install.sql")
    assert proc.returncode == 0, proc.stderr
    with psycopg.connect(via_runner) as conn:
        migrations.migrate(conn)
    assert _schema_dump(via_psql) == _schema_dump(via_runner)
    assert [(f, s) for f, s, _ in _ledger(via_psql)] == [(f, s) for f, s, _ in _ledger(via_runner)]
    # The two paths share one ledger: the runner sees nothing left to do after psql.
    with psycopg.connect(via_psql) as conn:
        assert migrations.migrate(conn).applied == []


def test_refuses_a_farmops_schema_owned_by_someone_else(empty_db):
    dsn = empty_db()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS farmops_squatter")
        conn.execute("CREATE ROLE farmops_squatter")
        conn.execute("CREATE SCHEMA farmops AUTHORIZATION farmops_squatter")
    try:
        with psycopg.connect(dsn) as conn, pytest.raises(UntrustedSchema, match="not owned by farmops_owner"):
            migrations.migrate(conn)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("DROP SCHEMA farmops")
            conn.execute("DROP ROLE farmops_squatter")


def test_after_bootstrap_a_plain_member_of_the_owner_role_can_migrate(empty_db):
    """The README's promise: only the first install needs a superuser."""
    dsn = empty_db()
    with psycopg.connect(dsn) as conn:
        migrations.migrate(conn)
    dbname = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS farmops_test_migrator")
        conn.execute(
            "CREATE ROLE farmops_test_migrator LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"
            " IN ROLE farmops_owner"
        )
        conn.execute(f'REVOKE CREATE ON DATABASE "{dbname}" FROM PUBLIC')
    try:
        with psycopg.connect(dsn.replace("postgres@", "farmops_test_migrator@")) as conn:
            report = migrations.migrate(conn)
        assert report.applied == [] and report.reapplied
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("DROP ROLE farmops_test_migrator")
