"""Runs every sql/tests/*.sql script with psql, as the application role, on a fresh database.

The scripts assert with plpgsql ASSERT; psql stops at the first failure (ON_ERROR_STOP).
"""

from __future__ import annotations

import pytest
from conftest import APP_LOGIN, REPO, psql

SCRIPTS = sorted((REPO / "sql" / "tests").glob("*.sql"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_sql_script(db, script):
    proc = psql(db.dsn(APP_LOGIN), script)
    assert proc.returncode == 0, proc.stderr


def test_a_failing_script_fails(db, tmp_path):
    """The runner itself can fail: a false ASSERT makes psql exit non-zero."""
    bad = tmp_path / "bad.sql"
    bad.write_text("DO $$ BEGIN ASSERT false, 'expected failure'; END $$;\n")
    proc = psql(db.dsn(APP_LOGIN), bad)
    assert proc.returncode != 0 and "expected failure" in proc.stderr
