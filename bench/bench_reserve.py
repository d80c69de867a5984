"""Reservations side by side, and the database cost of one governed run.

Starts its own embedded PostgreSQL (data in ``.tmp/bench-pg``), migrates a fresh database and
measures, in one process and one run:

1. Reservations per second with ``pgbench -M prepared`` (fsync as the server has it), at 1, 8
   and 32 clients, on ONE hot farm (every client debits the same row) and across 100 farms:

   - (a) bare UPDATE: ``UPDATE farms SET credit_balance = credit_balance - 1 WHERE id = $1 AND
     credit_balance > 0`` in autocommit (no run row, no ledger, no tenant check);
   - (b) seed CTE: the seed article's pattern, that UPDATE ``RETURNING`` feeding an INSERT into a
     ledger table (foreign key to the farm, ``balance_after >= 0``) in ONE statement;
   - (c) farmops as the client made it before the fast path: ``BEGIN; begin_tenant;
     reserve_credits(..., request id); COMMIT`` as the application role (4 round trips; run row,
     ledger leg, membership, idempotency; ``reserve_credits`` now runs the same core as (d));
   - (d) fused: ``farmops.reserve_run(farm, user, ..., token bounds, request id)`` in autocommit
     as the application role (1 round trip; the same writes and checks, the estimate folded in);
   - (e) the same three writes as (d) (run row, debit, ledger leg, same constraints and indexes)
     as ONE bare CTE statement by the superuser: no function, membership, price or validation.
     The ceiling of any implementation that writes what farmops writes.

   The four run in alternating slices (``--reps`` rounds, median per variant), so load from
   elsewhere on a shared machine hits them alike. After every cell: no balance below zero,
   ``check_invariants`` clean on every farmops farm, the seed ledger consistent with its balances.

2. A governed run (``t.ask()`` with FakeBedrock and the lexical embedder) as the library makes it:
   round trips to the database counted on the wire (a socket relay counts each client->server
   turn), and the database share of wall time (the run's wall time minus the time inside the
   model and the embedder), p50 and p95, for a text answer and for one tool call.

Prints one table and writes it to ``bench/results/reserve.txt`` with the machine described.
Nothing about time is asserted; the exit code is 1 only if an invariant is violated.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import farmops_client  # noqa: E402
from farmops_client import embedded  # noqa: E402
from farmops_client import migrate as migrations  # noqa: E402
from farmops_client.embeddings import LexicalEmbedder  # noqa: E402
from farmops_client.tenancy import create_app_login  # noqa: E402
from farmops_client.testing import FakeBedrock, fake_bedrock_client  # noqa: E402

APP_LOGIN = "farmops_bench_app"
CLIENTS = (1, 8, 32)
FARM_COUNTS = (1, 100)
STARTING_CREDITS = 1_000_000_000
RESULTS = REPO / "bench" / "results" / "reserve.txt"

# Farm ids are fixed so that a pgbench script can name them: variant letter, then the number.
FARM_ID = "('0000000{v}-0000-0000-0000-' || lpad(:n::text, 12, '0'))::uuid"
SCRIPTS = {
    "bare": """\\set n random(1, :farms)
UPDATE farmops.farms SET credit_balance = credit_balance - 1 WHERE id = {farm} AND credit_balance > 0;
""",
    "seed": """\\set n random(1, :farms)
WITH debit AS (UPDATE seed.farms SET credit_balance = credit_balance - 1
    WHERE id = {farm} AND credit_balance > 0 RETURNING id, credit_balance)
INSERT INTO seed.credit_ledger (farm_id, delta, balance_after, reason)
SELECT id, -1, credit_balance, 'reserve' FROM debit;
""",
    "farmops": """\\set n random(1, :farms)
BEGIN;
SELECT farmops.begin_tenant({farm}, 'owner');
SELECT farmops.reserve_credits(p_feature => 'bench', p_model => 'bench-model', p_credits => 1,
    p_request_id => gen_random_uuid()::text);
COMMIT;
""",
    "writes": """\\set n random(1, :farms)
WITH run AS (
    INSERT INTO farmops.ai_runs AS r
        (farm_id, user_id, feature, model, credits_reserved, request_id, expires_at)
    VALUES ({farm}, 'owner', 'bench', 'bench-model', 1, gen_random_uuid()::text,
        now() + interval '15 minutes')
    ON CONFLICT (farm_id, request_id) DO NOTHING RETURNING r.*),
debit AS (UPDATE farmops.farms AS f SET credit_balance = f.credit_balance - 1
    WHERE f.id = {farm} AND f.credit_balance >= 1 AND EXISTS (SELECT FROM run) RETURNING f.credit_balance)
INSERT INTO farmops.credit_ledger (farm_id, ai_run_id, kind, delta, balance_after, reason, actor)
SELECT r.farm_id, r.id, 'reserve', -1, d.credit_balance, r.feature, r.user_id
FROM run AS r CROSS JOIN debit AS d;
""",
    "fused": """\\set n random(1, :farms)
SELECT farmops.reserve_run(p_farm_id => {farm}, p_user_id => 'owner', p_feature => 'bench',
    p_model => 'bench-model', p_max_input_tokens => 0, p_max_output_tokens => 0,
    p_request_id => gen_random_uuid()::text);
""",
}
LETTER = {"bare": "a", "seed": "b", "farmops": "c", "fused": "d", "writes": "e"}
LABEL = {
    "bare": "(a) bare UPDATE",
    "seed": "(b) seed CTE",
    "farmops": "(c) farmops 4 RT",
    "fused": "(d) reserve_run",
    "writes": "(e) 3 writes CTE",
}
LEGEND = """\
(a) UPDATE farms ... WHERE credit_balance > 0, autocommit; (b) the seed's UPDATE ... RETURNING + ledger
    INSERT in one CTE;
(c) BEGIN; begin_tenant; reserve_credits(request id); COMMIT as the app role (as the client made it);
(d) farmops.reserve_run(farm, user, ..., token bounds, request id), one autocommit call as the app role;
(e) the run row, debit and ledger leg of (d) as one bare CTE by the superuser (no function, no checks)."""
SEED_SCHEMA = """
CREATE SCHEMA seed;
CREATE TABLE seed.farms (id uuid PRIMARY KEY, credit_balance integer NOT NULL CHECK (credit_balance >= 0));
CREATE TABLE seed.credit_ledger (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    farm_id uuid NOT NULL REFERENCES seed.farms (id),
    ai_run_id uuid,
    delta integer NOT NULL,
    balance_after integer NOT NULL CHECK (balance_after >= 0),
    reason text,
    created_at timestamptz NOT NULL DEFAULT now()
);
"""


def farm_uuid(variant: str, n: int) -> str:
    return f"0000000{LETTER[variant]}-0000-0000-0000-{n:012d}"


# -- setup ------------------------------------------------------------------------------------------------
def fresh_database(host: str, port: int) -> str:
    """A new migrated database with the app login, the seed tables and every variant's farms."""
    dbname = f"farmops_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    with psycopg.connect(host=host, port=port, user="postgres", dbname=dbname) as conn:
        migrations.migrate(conn)
        # 'bench-model' has no price: unknown models fail closed (OF410) unless a default price is set.
        conn.execute("SELECT farmops.set_model_price('*', 1000, 4000, p_source => 'bench default')")
        create_app_login(conn, APP_LOGIN)
        conn.execute(SEED_SCHEMA)
        n = max(FARM_COUNTS)
        for variant in ("bare", "farmops", "fused", "writes"):
            for i in range(1, n + 1):
                fid = farm_uuid(variant, i)
                conn.execute("INSERT INTO farmops.farms (id, name) VALUES (%s, %s)", [fid, f"{variant} {i}"])
                conn.execute("INSERT INTO farmops.farm_members VALUES (%s, 'owner', 'owner')", [fid])
        for i in range(1, n + 1):
            conn.execute("INSERT INTO seed.farms VALUES (%s, %s)", [farm_uuid("seed", i), STARTING_CREDITS])
        conn.commit()
    with psycopg.connect(host=host, port=port, user=APP_LOGIN, dbname=dbname) as conn:
        for variant in ("bare", "farmops", "fused", "writes"):
            for i in range(1, n + 1):
                with conn.transaction():
                    conn.execute("SELECT farmops.begin_tenant(%s, 'owner')", [farm_uuid(variant, i)])
                    conn.execute(
                        "SELECT farmops.grant_credits(p_farm_id => %s, p_credits => %s, p_reason => 'bench')",
                        [farm_uuid(variant, i), STARTING_CREDITS],
                    )
    with psycopg.connect(host=host, port=port, user="postgres", dbname=dbname, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return dbname


def drop_database(host: str, port: int, dbname: str) -> None:
    with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


# -- pgbench ----------------------------------------------------------------------------------------------
def pgbench(
    host, port, dbname, variant: str, clients: int, farms: int, seconds: float, workdir: Path
) -> float:
    """Transactions per second of one variant (pgbench -M prepared)."""
    script = workdir / f"{variant}.sql"
    script.write_text(SCRIPTS[variant].format(farm=FARM_ID.format(v=LETTER[variant])))
    user = APP_LOGIN if variant in ("farmops", "fused") else "postgres"  # (e) is no application path
    cmd = [
        str(embedded.bin_dir() / "pgbench"),
        "-h", host, "-p", str(port), "-U", user, "-n", "-M", "prepared",
        "-c", str(clients), "-j", str(min(clients, 4)), "-T", str(max(1, round(seconds))),
        "-D", f"farms={farms}", "-f", str(script), dbname,
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    match = re.search(r"tps = ([\d.]+)", out.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", out.stdout)
    if out.returncode != 0 or match is None or (failed and int(failed.group(1))):
        raise RuntimeError(f"pgbench {variant} failed:\n{out.stdout}\n{out.stderr}")
    return float(match.group(1))


def check_cell(conn: psycopg.Connection) -> list[str]:
    """Problems after a cell: negative balances, farmops invariants, the seed ledger vs its balances."""
    problems = [
        f"negative balance {r}" for r in conn.execute("SELECT id FROM farmops.farms WHERE credit_balance < 0")
    ]
    conn.execute("SET ROLE farmops_owner")
    try:
        # The bare UPDATE's farms (0000000a-...) keep no ledger on purpose; every other farm must be clean.
        problems += [
            str(r)
            for r in conn.execute(
                "SELECT * FROM farmops.check_invariants() WHERE farm_id::text NOT LIKE '0000000a-%'"
            )
        ]
    finally:
        conn.execute("RESET ROLE")
    problems += [
        f"seed farm {r[0]}: balance {r[1]}, ledger says {r[2]}"
        for r in conn.execute(
            "SELECT f.id, f.credit_balance, %s + coalesce(sum(l.delta), 0) FROM seed.farms f "
            "LEFT JOIN seed.credit_ledger l ON l.farm_id = f.id GROUP BY f.id "
            "HAVING f.credit_balance <> %s + coalesce(sum(l.delta), 0) OR f.credit_balance < 0",
            [STARTING_CREDITS, STARTING_CREDITS],
        )
    ]
    return problems


def reservation_matrix(
    host, port, dbname, seconds: float, reps: int, variants: list[str], log
) -> tuple[dict, list]:
    """{(farms, clients): {variant: median tps}} and the problems found after the cells."""
    results: dict = {}
    problems: list[str] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        psycopg.connect(host=host, port=port, user="postgres", dbname=dbname, autocommit=True) as check,
    ):
        for farms in FARM_COUNTS:
            for clients in CLIENTS:
                samples: dict[str, list[float]] = {v: [] for v in variants}
                for rep in range(reps):
                    order = variants[rep % len(variants) :] + variants[: rep % len(variants)]
                    for variant in order:
                        samples[variant].append(
                            pgbench(host, port, dbname, variant, clients, farms, seconds, Path(tmp))
                        )
                results[(farms, clients)] = {v: statistics.median(s) for v, s in samples.items()}
                found = check_cell(check)
                problems += [f"{farms} farms x {clients} clients: {p}" for p in found]
                log(f"{farms:>3} farms x {clients:>2} clients: " + ", ".join(
                    f"{v} {results[(farms, clients)][v]:,.0f}/s" for v in variants
                ) + ("" if not found else f"  {len(found)} PROBLEMS"))  # fmt: skip
    return results, problems


# -- the governed run -------------------------------------------------------------------------------------
class TurnCounter:
    """A relay on a Unix socket in front of the server that counts round trips.

    A round trip is a turn of the conversation: the client sends after having received (or at
    the start). Pipelined statements sent together are one turn, whatever the client library.
    """

    def __init__(self, host: str, port: int):
        self.target = os.path.join(host, f".s.PGSQL.{port}")
        self.dir = tempfile.mkdtemp(prefix="farmops-relay-")
        self.port = port
        self.turns = 0
        self._lock = threading.Lock()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(os.path.join(self.dir, f".s.PGSQL.{port}"))
        self._server.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self) -> int:
        with self._lock:
            turns, self.turns = self.turns, 0
        return turns

    def _accept(self) -> None:
        while True:
            client, _ = self._server.accept()
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
            threading.Thread(target=self._relay, args=(client, upstream), daemon=True).start()

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ, upstream)
        sel.register(upstream, selectors.EVENT_READ, client)
        last_from_client = False
        while True:
            for key, _ in sel.select():
                data = key.fileobj.recv(65536)
                if not data:
                    client.close()
                    upstream.close()
                    return
                from_client = key.fileobj is client
                if from_client and not last_from_client:
                    with self._lock:
                        self.turns += 1
                last_from_client = from_client
                key.data.sendall(data)


@contextmanager
def timed(box: list[float]):
    started = time.perf_counter()
    try:
        yield
    finally:
        box[0] += time.perf_counter() - started


def governed_runs(host: str, port: int, dbname: str, runs: int, log) -> dict[str, dict[str, float]]:
    """Round trips and database milliseconds of ``t.ask()``: a text answer, and one tool call."""
    outside = [0.0]  # seconds spent in the model and the embedder during the current run

    class TimedEmbedder(LexicalEmbedder):
        def embed(self, texts):
            with timed(outside):
                return super().embed(texts)

    def wrap(bedrock):
        converse = bedrock.converse

        def timed_converse(**kwargs):
            with timed(outside):
                return converse(**kwargs)

        bedrock.converse = timed_converse
        return bedrock

    fake = FakeBedrock()
    relay = TurnCounter(host, port)
    out: dict[str, dict[str, float]] = {}
    # relay: round trips on the wire; durable: the database ms as configured; async: the same with
    # synchronous_commit=off, i.e. without waiting for the WAL flush of each step's commit.
    for mode in ("relay", "durable", "async"):
        sock = relay.dir if mode == "relay" else host
        dsn = f"host={sock} port={port} dbname={dbname} user={APP_LOGIN}"
        if mode == "async":
            dsn += " options='-c synchronous_commit=off'"
        with farmops_client.connect(
            dsn, bedrock=wrap(fake_bedrock_client(fake)), embedder=TimedEmbedder(), min_size=1, max_size=1
        ) as client:
            farm = client.create_farm(f"governed {mode}", "alice")
            with client.tenant(farm, "alice") as t:
                t.grant_credits(STARTING_CREDITS, "bench")
                t.ingest_document(
                    "Vaccination", "Vaccinate broilers against Newcastle disease on day 7 and 21."
                )
            for kind in ("text answer", "one tool call"):
                db_ms, turns = [], []
                for i in range(runs + 3):
                    if kind == "text answer":
                        fake.push(FakeBedrock.text("Give water first."))
                    else:
                        fake.push(
                            FakeBedrock.tool_use(
                                ("create_note", {"title": "water", "body": f"pen {i} cleaned"})
                            ),
                            FakeBedrock.text("Noted."),
                        )
                    with client.tenant(farm, "alice") as t:
                        outside[0] = 0.0
                        relay.reset()
                        started = time.perf_counter()
                        t.ask("When do I vaccinate broilers?", max_tokens=100, max_input_tokens=100)
                        wall = time.perf_counter() - started
                        turns.append(relay.reset())
                    if i >= 3:  # warm-up: pooled connection, prepared plans, caches, tool specs
                        db_ms.append((wall - outside[0]) * 1000)
                m = out.setdefault(kind, {})
                if mode == "relay":
                    m["round_trips"] = statistics.median(turns[3:])
                else:
                    prefix = "" if mode == "durable" else "async_"
                    m[prefix + "p50"] = statistics.median(db_ms)
                    m[prefix + "p95"] = statistics.quantiles(db_ms, n=20)[18]
                log(f"governed run, {kind}, {mode}: {m}")
    return out


# -- report -----------------------------------------------------------------------------------------------
def machine(host: str, port: int, dbname: str) -> list[str]:
    cpu = "unknown CPU"
    with contextlib_suppress():
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    mem = ""
    with contextlib_suppress():
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    with psycopg.connect(host=host, port=port, user="postgres", dbname=dbname) as conn:
        settings = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN ('server_version', 'fsync', "
                "'synchronous_commit', 'shared_buffers', 'wal_sync_method', 'max_connections')"
            ).fetchall()
        )
    rev = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return [
        f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC}; commit {rev.stdout.strip() or '?'}",
        f"machine: {cpu}, {os.cpu_count()} CPUs visible{mem}; {platform.platform()}; "
        f"Python {platform.python_version()}",
        f"PostgreSQL {settings.get('server_version')} (embedded, Unix socket): "
        f"fsync={settings.get('fsync')}, "
        f"synchronous_commit={settings.get('synchronous_commit')}, "
        f"wal_sync_method={settings.get('wal_sync_method')}, "
        f"shared_buffers={settings.get('shared_buffers')} x 8kB",
    ]


class contextlib_suppress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return exc[0] is not None and issubclass(exc[0], Exception)


def render(
    matrix: dict, variants: list[str], runs: dict, header: list[str], seconds: float, reps: int
) -> str:
    lines = [*header, ""]
    lines.append(
        f"Reservations per second: pgbench -M prepared, {seconds:g} s per run, "
        f"median of {reps} alternating runs"
    )
    cols = ["farms", "clients", *[LABEL[v] for v in variants]]
    pairs = [
        ("farmops", "seed"),
        ("farmops", "bare"),
        ("fused", "seed"),
        ("fused", "bare"),
        ("writes", "seed"),
    ]
    ratio_cols = [(v, base) for v, base in pairs if v in variants]
    cols += [f"{LETTER[v]}/{LETTER[base]}" for v, base in ratio_cols]
    rows = []
    for (farms, clients), tps in matrix.items():
        row = ["1 (hot)" if farms == 1 else str(farms), str(clients)]
        row += [f"{tps[v]:,.0f}" for v in variants]
        row += [f"{tps[v] / tps[base]:.2f}x" for v, base in ratio_cols]
        rows.append(row)
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(cols)]
    lines.append("  ".join(c.rjust(w) for c, w in zip(cols, widths, strict=True)))
    lines += ["  ".join(x.rjust(w) for x, w in zip(r, widths, strict=True)) for r in rows]
    lines.append(LEGEND)
    if runs:
        lines += [
            "",
            "Governed run t.ask() (FakeBedrock, lexical embedder): database round trips and milliseconds",
        ]
        lines.append("(database ms = wall time minus the time inside the model and the embedder; without")
        lines.append(" flush wait = the same with synchronous_commit=off: what is not this disk's WAL flush)")
        for kind, m in runs.items():
            lines.append(
                f"  {kind:<14} round trips {m['round_trips']:.0f}"
                f"   db ms p50 {m['p50']:.2f}  p95 {m['p95']:.2f}"
                f"   without flush wait p50 {m['async_p50']:.2f}  p95 {m['async_p95']:.2f}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each pgbench run (default 2)")
    parser.add_argument("--reps", type=int, default=3, help="alternating runs per cell (median; default 3)")
    parser.add_argument("--runs", type=int, default=40, help="governed runs per kind (default 40)")
    parser.add_argument(
        "--data-dir", type=Path, default=REPO / ".tmp" / "bench-pg", help="embedded server data"
    )
    parser.add_argument("--no-matrix", action="store_true", help="skip the reservation matrix")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where the table is written")
    args = parser.parse_args(argv)
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731

    host, port = embedded.serve(args.data_dir, stop_at_exit=True)
    dbname = fresh_database(host, port)
    try:
        with psycopg.connect(host=host, port=port, user="postgres", dbname=dbname) as conn:
            fused = conn.execute("SELECT to_regproc('farmops.reserve_run') IS NOT NULL").fetchone()[0]
        variants = ["bare", "seed", "farmops"] + (["fused", "writes"] if fused else [])
        matrix, problems = (
            ({}, [])
            if args.no_matrix
            else reservation_matrix(host, port, dbname, args.seconds, args.reps, variants, log)
        )
        runs = governed_runs(host, port, dbname, args.runs, log) if args.runs else {}
        text = render(matrix, variants, runs, machine(host, port, dbname), args.seconds, args.reps)
        verdict = "no overdraft, check_invariants clean, seed ledger consistent."
        if problems:
            verdict = f"{len(problems)} PROBLEMS: {problems[:5]}"
        text += "\n\nAfter every cell: " + verdict
        print(text)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
        return 1 if problems else 0
    finally:
        drop_database(host, port, dbname)


if __name__ == "__main__":
    sys.exit(main())
