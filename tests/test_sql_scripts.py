"""Runs every sql/tests/*.sql script with psql, as the application role, on a fresh database.

The scripts assert with plpgsql ASSERT; psql stops at the first failure (ON_ERROR_STOP).
"""

from __future__ import annotations

import subprocess

import pytest
from conftest import APP_LOGIN, REPO

from farmops_client import embedded

SCRIPTS = sorted((REPO / "sql" / "tests").glob("*.sql"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_sql_script(db, script):
    proc = subprocess.run(
        [
            str(embedded.bin_dir() / "psql"),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-f",
            str(script),
            db.dsn(APP_LOGIN),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr


def test_a_failing_script_fails(db, tmp_path):
    """The runner itself can fail: a false ASSERT makes psql exit non-zero."""
    bad = tmp_path / "bad.sql"
    bad.write_text("DO $$ BEGIN ASSERT false, 'expected failure'; END $$;\n")
    proc = subprocess.run(
        [
            str(embedded.bin_dir() / "psql"),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-f",
            str(bad),
            db.dsn(APP_LOGIN),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0 and "expected failure" in proc.stderr
