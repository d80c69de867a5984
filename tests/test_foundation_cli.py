"""The foundation's CLI as an operator or CI uses it: real processes, real exit codes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

FARMOPS = [sys.executable, "-m", "farmops_client.cli"]


def run(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "FARMOPS_DATABASE_URL"}
    full_env.update(env or {})
    return subprocess.run(
        [*FARMOPS, *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=120
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, exit_code: int) -> None:
    assert proc.returncode == exit_code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("farmops: "), proc.stderr


def test_help_explains_every_command():
    proc = run("--help")
    assert proc.returncode == 0
    for command in ("db", "migrate", "install-script", "errors"):
        assert command in proc.stdout
    for sub in ("start", "stop", "status", "url"):
        assert sub in run("db", "--help").stdout


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://nobody@127.0.0.1:1/nowhere",  # nothing listens there
        "postgresql://postgres@/farmops?host=/nonexistent-socket-dir",  # server down
        "this is not a dsn",
    ],
)
def test_bad_dsn_or_server_down_is_one_line_exit_3(dsn):
    proc = run("migrate", "--dsn", dsn)
    assert_one_line_error(proc, 3)
    proc = run("migrate", "--status", env={"FARMOPS_DATABASE_URL": dsn})
    assert_one_line_error(proc, 3)


def test_migrate_via_cli_status_and_dry_run(db):
    dsn = db.dsn()
    proc = run("migrate", "--dsn", dsn)
    assert proc.returncode == 0, proc.stderr
    assert "applied 0 migration(s)" in proc.stdout  # the test database is already migrated
    status = run("migrate", "--dsn", dsn, "--status")
    assert status.returncode == 0
    *migration_lines, version_line = status.stdout.splitlines()
    assert all(line.startswith("applied") for line in migration_lines)
    assert version_line.startswith("version  installed ")
    dry = run("migrate", "--dsn", dsn, "--dry-run")
    assert dry.returncode == 0 and "rolled back" in dry.stdout


def test_embedded_db_start_is_idempotent_and_stops(tmp_path):
    data_dir = tmp_path / "pg"
    env = {"FARMOPS_DATA_DIR": str(data_dir)}
    try:
        first = run("db", "start", env=env)
        assert first.returncode == 0, first.stderr
        dsn = first.stdout.strip()
        assert dsn.startswith("postgresql://")
        again = run("db", "start", env=env)
        assert again.stdout.strip() == dsn
        assert run("db", "url", env=env).stdout.strip() == dsn
        assert run("db", "status", env=env).returncode == 0
        migrated = run("migrate", env=env)
        assert migrated.returncode == 0 and "applied" in migrated.stdout, migrated.stderr
    finally:
        stopped = run("db", "stop", env=env)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    down = run("db", "status", env=env)
    assert down.returncode == 1 and "stopped" in down.stdout
    assert_one_line_error(run("db", "url", env=env), 1)


def test_built_wheel_ships_the_sql_and_migrates(tmp_path, empty_db):
    wheel_dir = tmp_path / "wheel"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheel_dir),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = wheel_dir.glob("farmops-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "farmops_client/sql/install.sql" in names
    assert "farmops_client/sql/bootstrap.sql" in names
    for path in (REPO / "sql" / "schema").glob("*.sql"):
        assert f"farmops_client/sql/schema/{path.name}" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    # Run from the unpacked wheel, away from the source tree, against a fresh empty database.
    env = {"PYTHONPATH": str(site)}
    probe = subprocess.run(
        [sys.executable, "-c", "from farmops_client.paths import sql_dir; print(sql_dir())"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=tmp_path,
        check=True,
    )
    assert Path(probe.stdout.strip()).is_relative_to(site)
    proc = run("migrate", "--dsn", empty_db(), env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "applied 0 migration(s)" not in proc.stdout
    shutil.rmtree(site)
