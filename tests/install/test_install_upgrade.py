"""Install anywhere, upgrade from any release: frozen migrations, pgvector's schema, the version."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from support import APP_LOGIN, REPO, create_farm, psql, tenant

from farmops_client import embedded
from farmops_client import migrate as migrations
from farmops_client.cli import main
from farmops_client.errors import MigrationChanged, MigrationError

SQL = REPO / "sql"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# sql/ as it was before the one-shape restructure (commit f042e90), install.sql left out.
BEFORE_RESTRUCTURE = FIXTURES / "sql_before_restructure"
# The first released content of 0002_runs_and_ledger.sql (commit 7c3a900), edited later.
FIRST_0002 = FIXTURES / "sql_0002_7c3a900" / "0002_runs_and_ledger.sql"


def schema_dump(dsn: str) -> str:
    """``pg_dump --schema-only`` of the whole database, without what is not schema."""
    out = subprocess.run(
        [str(embedded.bin_dir() / "pg_dump"), "--schema-only", "--no-owner", dsn],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    # pg_dump 17.6+/18 writes a random \restrict key per dump. Nothing else is normalised:
    # the ledger's rows and the recorded version are data, which --schema-only leaves out.
    return re.sub(r"^\\(un)?restrict .*$", "", out, flags=re.M)


def assert_same_schema(upgraded: str, fresh: str) -> None:
    a, b = schema_dump(upgraded), schema_dump(fresh)
    if a != b:
        import difflib

        diff = "".join(difflib.unified_diff(a.splitlines(True), b.splitlines(True), "upgraded", "fresh", n=2))
        pytest.fail(f"the upgraded schema differs from a fresh install:\n{diff[:6000]}")


def ledger(dsn: str) -> list[tuple[str, str]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT filename, sha256 FROM farmops.schema_migrations ORDER BY 1").fetchall()


def migrate(dsn: str, root: Path | None = None) -> migrations.MigrationReport:
    with psycopg.connect(dsn) as conn:
        return migrations.migrate(conn, root=root)


def current_ledger() -> list[tuple[str, str]]:
    return [(m.filename, m.sha256) for m in migrations.schema_files()]


def root_with_first_0002(tmp_path: Path) -> Path:
    """The pre-restructure tree with 0002 as first released: a database installed back then."""
    root = tmp_path / "sql_first_0002"
    shutil.copytree(BEFORE_RESTRUCTURE, root)
    shutil.copy(FIRST_0002, root / "schema" / FIRST_0002.name)
    return root


# --- the frozen manifest ------------------------------------------------------------------------


def test_every_migration_is_frozen_in_the_manifest():
    manifest = migrations.read_manifest()
    schema = SQL / "schema"
    on_disk = {p.relative_to(schema).as_posix(): p for p in sorted(schema.glob("*.sql"))}
    on_disk |= {p.relative_to(schema).as_posix(): p for p in sorted(schema.glob("upgrades/*.sql"))}
    problems = []
    for name, path in on_disk.items():
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        if name not in manifest.frozen:
            problems.append(f"{name} is not in sql/schema/CHECKSUMS: add the line `{name} {sha}`")
        elif manifest.frozen[name] != sha:
            problems.append(
                f"{name} was edited after it was frozen (CHECKSUMS {manifest.frozen[name]}, file {sha}):"
                " a released migration may already be applied somewhere; restore it and add a new"
                " migration instead"
            )
    problems += [f"CHECKSUMS lists {name}, which does not exist" for name in manifest.frozen.keys() - on_disk]
    for old in manifest.accepted:
        if old.filename not in manifest.frozen or old.sha256 == manifest.frozen[old.filename]:
            problems.append(f"accepted {old.filename} {old.sha256}: not an older content of a frozen file")
        if old.upgrade is not None and old.upgrade not in manifest.frozen:
            problems.append(f"accepted {old.filename}: its upgrade {old.upgrade} is not frozen")
    assert problems == [], "\n".join(problems)


def test_an_accepted_checksum_needs_a_reason_and_a_known_action(tmp_path):
    root = tmp_path / "sql"
    shutil.copytree(SQL, root)
    manifest = root / "schema" / "CHECKSUMS"
    text = manifest.read_text()
    manifest.write_text(text + f"0001_tenancy.sql {'0' * 64} equivalent\n")
    with pytest.raises(MigrationError, match="needs a reason"):
        migrations.read_manifest(root)
    for bad in (
        f"0001_tenancy.sql {'0' * 64} trust-me  # because",
        "0001_tenancy.sql abc123 equivalent  # x",
    ):
        manifest.write_text(text + bad + "\n")
        with pytest.raises(MigrationError, match="expected FILE SHA256"):
            migrations.read_manifest(root)


# --- upgrades from released trees -----------------------------------------------------------------


def test_a_database_from_before_the_restructure_migrates_to_the_fresh_schema(empty_db):
    old, fresh = empty_db(), empty_db()
    migrate(old, BEFORE_RESTRUCTURE)
    report = migrate(old)
    assert "0040_package_version.sql" in report.applied
    assert sorted(report.upgraded) == ["0020_documents_and_embeddings.sql", "0021_global_knowledge.sql"]
    migrate(fresh)
    assert_same_schema(old, fresh)
    assert ledger(old) == current_ledger()
    assert migrate(old).applied == [] and migrate(old).upgraded == []


def test_a_database_with_the_first_0002_was_refused_without_the_manifest(empty_db, tmp_path):
    dsn = empty_db()
    migrate(dsn, root_with_first_0002(tmp_path))
    head = tmp_path / "head"
    shutil.copytree(SQL, head)
    (head / "schema" / "CHECKSUMS").unlink()
    with pytest.raises(MigrationChanged, match=r"0002_runs_and_ledger\.sql"):
        migrate(dsn, head)


def test_a_database_with_the_first_0002_migrates_with_the_runner(empty_db, tmp_path):
    old, fresh = empty_db(), empty_db()
    migrate(old, root_with_first_0002(tmp_path))
    with psycopg.connect(old) as conn:
        states = {s.filename: s.state for s in migrations.status(conn)}
    assert states["0002_runs_and_ledger.sql"] == "upgrade"
    report = migrate(old)
    assert report.upgraded[0] == "0002_runs_and_ledger.sql"
    migrate(fresh)
    assert_same_schema(old, fresh)
    assert ledger(old) == current_ledger()


def test_a_database_with_the_first_0002_migrates_with_psql(empty_db, tmp_path):
    old, fresh = empty_db(), empty_db()
    migrate(old, root_with_first_0002(tmp_path))
    proc = psql(old, SQL / "install.sql")
    assert proc.returncode == 0, proc.stderr
    migrate(fresh)
    assert_same_schema(old, fresh)
    assert ledger(old) == current_ledger()


def test_the_0002_upgrade_is_idempotent(empty_db, tmp_path):
    dsn = empty_db()
    migrate(dsn, root_with_first_0002(tmp_path))
    upgrade = SQL / "schema" / "upgrades" / "0002_runs_and_ledger_from_7c3a900.sql"
    with psycopg.connect(dsn) as conn:
        for _ in range(2):
            conn.execute(upgrade.read_text(), prepare=False)
        checks = conn.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = 'farmops.ai_runs'::regclass AND conname ~ '^ai_runs_check[0-9]*$' ORDER BY 1"
        ).fetchall()
    assert [c for c, _ in checks] == ["ai_runs_check", "ai_runs_check1", "ai_runs_check2", "ai_runs_check3"]
    assert "expires_at > reserved_at" in checks[3][1]


# --- pgvector in another schema (Supabase keeps it in `extensions`) ---------------------------------


def _extensions_db(empty_db) -> str:
    dsn = empty_db()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA extensions")
        conn.execute("CREATE EXTENSION vector WITH SCHEMA extensions")
        # As Supabase does for its roles: pgvector's schema is on the application's search_path.
        dbname = conn.info.dbname
        conn.execute(
            f'ALTER ROLE {APP_LOGIN} IN DATABASE "{dbname}" SET search_path = "$user", public, extensions'
        )
    return dsn


def _search_as_the_app(dsn: str) -> list[str]:
    one = "[" + ",".join(["1"] + ["0"] * 1023) + "]"
    with psycopg.connect(dsn, autocommit=True) as admin:  # roles are cluster-wide: allow it in this database
        admin.execute("SELECT farmops.allow_login(%s)", [APP_LOGIN])
    with psycopg.connect(dsn.replace("postgres@", f"{APP_LOGIN}@"), autocommit=True) as app:
        farm = create_farm(app)
        with tenant(app, farm, "alice"):
            app.execute(
                "SELECT farmops.ingest_document(p_title => 'Vaccines', p_content => 'Newcastle at day 7',"
                " p_chunks => ARRAY['Newcastle at day 7'], p_embeddings => ARRAY[%s::vector],"
                " p_model => 'amazon.titan-embed-text-v2:0')",
                [one],
            )
            rows = app.execute("SELECT content FROM farmops.search(p_query => %s::vector, p_k => 3)", [one])
            return [r[0] for r in rows]


def _vector_columns(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT format_type(a.atttypid, NULL) FROM pg_attribute AS a JOIN pg_class AS c"
            " ON c.oid = a.attrelid WHERE c.relnamespace = 'farmops'::regnamespace"
            " AND a.attname = 'embedding' AND c.relkind = 'r'"
        )
        return {r[0] for r in rows}


def test_pgvector_in_the_extensions_schema_with_the_runner(empty_db):
    dsn = _extensions_db(empty_db)
    migrate(dsn)
    assert _vector_columns(dsn) == {"extensions.vector"}
    assert _search_as_the_app(dsn) == ["Newcastle at day 7"]
    assert migrate(dsn).applied == []  # and again, as every later migrate does


def test_pgvector_in_the_extensions_schema_with_psql(empty_db):
    dsn = _extensions_db(empty_db)
    proc = psql(dsn, SQL / "install.sql")
    assert proc.returncode == 0, proc.stderr
    assert _vector_columns(dsn) == {"extensions.vector"}
    assert _search_as_the_app(dsn) == ["Newcastle at day 7"]


def test_pgvector_in_public_stays_in_public(empty_db):
    dsn = empty_db()
    migrate(dsn)
    assert _vector_columns(dsn) == {"vector"}  # format_type omits public (on the search_path)


# --- version and status -------------------------------------------------------------------------


def test_version_is_recorded_and_readable_by_the_app(app):
    assert app.execute("SELECT farmops.version()").fetchone()[0] == migrations.package_version()
    comment = app.execute("SELECT obj_description('farmops.version()'::regprocedure)").fetchone()[0]
    assert comment and "version" in comment


def test_package_version_is_pyprojects():
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'version = "{migrations.package_version()}"' in pyproject


def test_migrate_records_a_new_version(empty_db):
    dsn = empty_db()
    migrate(dsn)
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE farmops._package_version SET version = '0.0.1'")
    migrate(dsn)
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT farmops.version()").fetchone()[0] == migrations.package_version()


def _status(dsn: str):
    return CliRunner().invoke(main, ["migrate", "--status", "--dsn", dsn])


def test_migrate_status_exits_1_until_up_to_date(empty_db, tmp_path):
    dsn = empty_db()
    result = _status(dsn)
    assert result.exit_code == 1, result.output
    assert "pending  0001_tenancy.sql" in result.output
    migrate(dsn)
    result = _status(dsn)
    assert result.exit_code == 0, result.output
    assert f"installed {migrations.package_version()}" in result.output
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE farmops._package_version SET version = '0.0.1'")
    assert _status(dsn).exit_code == 1  # another version's functions are installed
    migrate(dsn)
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "UPDATE farmops.schema_migrations SET sha256 = %s WHERE filename = '0001_tenancy.sql'", ["0" * 64]
        )
    result = _status(dsn)
    assert result.exit_code == 1 and "changed  0001_tenancy.sql" in result.output


def test_migrate_status_exits_1_for_an_accepted_old_checksum(empty_db, tmp_path):
    dsn = empty_db()
    migrate(dsn, root_with_first_0002(tmp_path))
    result = _status(dsn)
    assert result.exit_code == 1 and "upgrade  0002_runs_and_ledger.sql" in result.output
