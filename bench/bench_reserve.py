"""Reservations per second: farmops.reserve_credits vs a bare conditional UPDATE.

Starts its own embedded PostgreSQL (data in ``.tmp/bench-pg``), migrates a fresh database
and, side by side in one run, measures at 1, 8 and 32 client threads (one connection each),
on ONE farm (every client contends for the same row) and across 100 farms:

- ``reserve_credits``: as the application role, one transaction per reservation:
  ``begin_tenant`` + ``reserve_credits`` (debit, ai_runs row, ledger row in one statement);
- bare ``UPDATE``: as the package owner, autocommit, the naive one-statement debit
  ``UPDATE farms SET credit_balance = credit_balance - 1 WHERE id = $1 AND credit_balance > 0``.

Each cell runs both sides in alternating slices (so load from elsewhere on a shared machine
hits both alike). Prints a table and asserts nothing about time. ``--seconds`` sets each
side's time per cell (default 2 s; 6 cells, so a default run takes well under a minute).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from farmops_client import embedded  # noqa: E402
from farmops_client import migrate as migrations  # noqa: E402
from farmops_client.tenancy import create_app_login  # noqa: E402

APP_LOGIN = "farmops_bench_app"
CLIENTS = (1, 8, 32)
FARM_COUNTS = (1, 100)
BARE_UPDATE = (
    "UPDATE farmops.farms SET credit_balance = credit_balance - 1 WHERE id = %s AND credit_balance > 0"
)
STARTING_CREDITS = 1_000_000_000


def fresh_database(host: str, port: int) -> str:
    """Create and migrate a new database; add the benchmark's application login role."""
    dbname = f"farmops_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    with psycopg.connect(host=host, port=port, user="postgres", dbname=dbname) as conn:
        migrations.migrate(conn)
        create_app_login(conn, APP_LOGIN)
        conn.commit()
    return dbname


def drop_database(host: str, port: int, dbname: str) -> None:
    """Remove the benchmark database."""
    with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def make_farms(connect: Callable[[str], psycopg.Connection], n: int, prefix: str) -> list[uuid.UUID]:
    """n farms owned by 'owner', each granted STARTING_CREDITS through grant_credits."""
    farms = []
    with connect("app") as conn:
        for i in range(n):
            farm_id = conn.execute("SELECT farmops.create_farm(%s, 'owner')", [f"{prefix} {i}"]).fetchone()[0]
            with conn.transaction():
                conn.execute("SELECT farmops.begin_tenant(%s, 'owner')", [farm_id])
                conn.execute(
                    "SELECT farmops.grant_credits(p_farm_id => %s, p_credits => %s, p_reason => 'bench')",
                    [farm_id, STARTING_CREDITS],
                )
            farms.append(farm_id)
    return farms


def reserve_op(conn: psycopg.Connection, farm_id: uuid.UUID) -> None:
    """One reservation through the package: a tenant transaction around reserve_credits."""
    with conn.transaction():
        conn.execute("SELECT farmops.begin_tenant(%s, 'owner')", [farm_id])
        conn.execute(
            "SELECT farmops.reserve_credits(p_feature => 'bench', p_model => 'bench-model', p_credits => 1)"
        )


def bare_op(conn: psycopg.Connection, farm_id: uuid.UUID) -> None:
    """One reservation the naive way: a single conditional UPDATE in autocommit."""
    if conn.execute(BARE_UPDATE, [farm_id]).rowcount != 1:
        raise RuntimeError("bare UPDATE found no credit")


class Load:
    """``clients`` threads, each on its own connection, running ``op`` in timed slices."""

    def __init__(self, connect, who: str, op, farms: list[uuid.UUID], clients: int):
        self.op, self.farms, self.clients = op, farms, clients
        self.conns = [connect(who) for _ in range(clients)]
        self.next_farm = list(range(clients))
        self.ops = 0
        self.elapsed = 0.0
        for conn in self.conns:  # warm up: prepared statements, caches
            for _ in range(5):
                op(conn, farms[0])

    def run(self, seconds: float) -> None:
        """Run every client for about ``seconds``, lined up by a barrier; add to the totals."""
        barrier = threading.Barrier(self.clients + 1)
        stop = threading.Event()
        done = [0] * self.clients
        errors: list[BaseException] = []

        def worker(i: int) -> None:
            conn, n = self.conns[i], len(self.farms)
            barrier.wait()
            try:
                while not stop.is_set():
                    self.op(conn, self.farms[self.next_farm[i] % n])
                    self.next_farm[i] += self.clients
                    done[i] += 1
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(self.clients)]
        for t in threads:
            t.start()
        barrier.wait()
        started = time.perf_counter()
        time.sleep(seconds)
        stop.set()
        for t in threads:
            t.join()
        self.elapsed += time.perf_counter() - started
        self.ops += sum(done)
        if errors:
            raise errors[0]

    @property
    def rate(self) -> float:
        """Operations per second over all slices."""
        return self.ops / self.elapsed

    def close(self) -> None:
        """Close the connections."""
        for conn in self.conns:
            conn.close()


def measure_pair(connect, farms_package, farms_bare, clients: int, seconds: float, slices: int = 4):
    """(reserve_credits/s, bare UPDATE/s), measured in alternating slices so that load from
    elsewhere on the machine hits both sides alike."""
    package = Load(connect, "app", reserve_op, farms_package, clients)
    bare = Load(connect, "owner", bare_op, farms_bare, clients)
    try:
        for _ in range(slices):
            bare.run(seconds / slices)
            package.run(seconds / slices)
        return package.rate, bare.rate
    finally:
        package.close()
        bare.close()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each measurement (default 2)")
    parser.add_argument(
        "--data-dir", type=Path, default=REPO / ".tmp" / "bench-pg", help="embedded server data directory"
    )
    args = parser.parse_args(argv)
    console = Console()

    host, port = embedded.serve(args.data_dir, stop_at_exit=True)
    dbname = fresh_database(host, port)
    try:

        def connect(who: str) -> psycopg.Connection:
            user = APP_LOGIN if who == "app" else "postgres"
            conn = psycopg.connect(host=host, port=port, user=user, dbname=dbname, autocommit=True)
            if who == "owner":
                conn.execute("SET ROLE farmops_owner")
            return conn

        with console.status("creating farms"):
            reserve_farms = {1: make_farms(connect, 1, "R1"), 100: make_farms(connect, 100, "R100")}
            bare_farms = {1: make_farms(connect, 1, "B1"), 100: make_farms(connect, 100, "B100")}

        server_version = connect("owner").execute("SHOW server_version").fetchone()[0]
        table = Table(
            title=f"Reservations per second (PostgreSQL {server_version}, {os.cpu_count()} CPUs, "
            f"{args.seconds:g} s per side per cell, alternating slices)"
        )
        for column in ("farms", "clients", "reserve_credits /s", "bare UPDATE /s", "bare / reserve"):
            table.add_column(column, justify="right")
        for n_farms in FARM_COUNTS:
            for clients in CLIENTS:
                with console.status(f"{n_farms} farm(s), {clients} client(s)"):
                    package, bare = measure_pair(
                        connect, reserve_farms[n_farms], bare_farms[n_farms], clients, args.seconds
                    )
                table.add_row(
                    "1 (one row)" if n_farms == 1 else str(n_farms),
                    str(clients),
                    f"{package:,.0f}",
                    f"{bare:,.0f}",
                    f"{bare / package:.2f}x",
                )
        console.print(table)

        with connect("owner") as owner:
            ids = reserve_farms[1] + reserve_farms[100]
            bad = owner.execute(
                "SELECT count(*) FROM unnest(%s::uuid[]) AS f(id), farmops.check_invariants(f.id)", [ids]
            ).fetchone()[0]
            runs = owner.execute("SELECT count(*) FROM farmops.ai_runs").fetchone()[0]
        console.print(
            f"reserve_credits wrote {runs:,} runs (each with its ledger row); "
            f"check_invariants on those farms: {'clean' if bad == 0 else f'{bad} VIOLATIONS'}"
        )
        console.print(
            "reserve_credits = BEGIN + begin_tenant + reserve_credits + COMMIT"
            " (4 round trips, 3 rows written);"
            " bare UPDATE = 1 autocommit statement (1 row, no run, no ledger, no tenant check)."
        )
        return 0 if bad == 0 else 1
    finally:
        drop_database(host, port, dbname)


if __name__ == "__main__":
    sys.exit(main())
