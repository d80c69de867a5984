"""A real PgBouncer in transaction mode in front of the test server (Debian's ``pgbouncer``).

CI installs it (.ci/run); developers run ``make pgbouncer`` once. Without it the tests skip
with that hint, except under ``CI=true`` where a missing PgBouncer fails: CI must prove it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

INSTALL_HINT = "PgBouncer is not installed: run `make pgbouncer` (apt-get install pgbouncer)"


def executable() -> str:
    """The pgbouncer binary; fails under CI=true, skips elsewhere when it is missing."""
    path = shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(p, os.X_OK)), None
    )
    if path:
        return path
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{INSTALL_HINT}; .ci/run must install it before `make test`", pytrace=False)
    pytest.skip(INSTALL_HINT)


def version(binary: str) -> tuple[int, int]:
    """(major, minor) of ``pgbouncer --version`` (first line: ``PgBouncer 1.18.0``)."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    major, minor = re.search(r"PgBouncer (\d+)\.(\d+)", out).groups()
    return int(major), int(minor)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgBouncer:
    """A running PgBouncer: ``dsn(user, dbname)`` for clients, ``console(cmd)`` for its admin console."""

    port: int
    version: tuple[int, int]
    prepared_statements: bool
    process: subprocess.Popen
    workdir: Path

    def dsn(self, user: str, dbname: str) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}"

    def console(self, command: str) -> list[tuple]:
        """Run a command on the admin console (simple protocol, autocommit, as ``postgres``)."""
        with psycopg.connect(self.dsn("postgres", "pgbouncer"), autocommit=True) as conn:
            cur = conn.cursor()
            cur.execute(command.encode(), prepare=False)  # bytes: the console has no extended protocol
            return cur.fetchall() if cur.description else []

    def log(self) -> str:
        return (self.workdir / "pgbouncer.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # immediate shutdown: the test is over
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


@contextlib.contextmanager
def running(
    pg_host: str, pg_port: int, users: list[str], *, pool_size: int = 2, basedir: Path
) -> Iterator[PgBouncer]:
    """Start PgBouncer (transaction mode, ``pool_size`` server connections per database and user)
    on a free port, forwarding every database to the server at ``pg_host`` (a socket dir)."""
    binary = executable()
    ver = version(binary)
    # Protocol-level prepared statements exist from 1.21; DISCARD ALL (the client pool's reset)
    # only keeps them consistent from 1.22 on, so older versions run without.
    prepared = ver >= (1, 22)
    basedir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="pgbouncer-", dir=basedir))
    (workdir / "users.txt").write_text("".join(f'"{u}" ""\n' for u in users))
    port = _free_port()
    ini = f"""[databases]
* = host={pg_host} port={pg_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {workdir}/users.txt
admin_users = postgres
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 100
"""
    if prepared:
        ini += "max_prepared_statements = 100\n"
    (workdir / "pgbouncer.ini").write_text(ini)
    command = [binary, str(workdir / "pgbouncer.ini")]  # logs to stderr: our log file
    if os.geteuid() == 0:
        # PgBouncer refuses to run as root: run it as the owner of the server's socket directory
        # (the embedded server's own user), who can certainly reach that socket.
        owner = pwd.getpwuid(os.stat(pg_host).st_uid)
        for path in (workdir, *workdir.iterdir()):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        command[1:1] = ["-u", owner.pw_name]
    with open(workdir / "pgbouncer.log", "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    bouncer = PgBouncer(port, ver, prepared, process, workdir)
    try:
        _wait_ready(bouncer)
        yield bouncer
    finally:
        bouncer.stop()


def _wait_ready(bouncer: PgBouncer, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if bouncer.process.poll() is not None:
            pytest.fail(f"pgbouncer exited ({bouncer.process.returncode}):\n{bouncer.log()}", pytrace=False)
        try:
            with socket.create_connection(("127.0.0.1", bouncer.port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"pgbouncer did not listen within {timeout}s:\n{bouncer.log()}", pytrace=False)
            time.sleep(0.05)
