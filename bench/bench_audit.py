"""What auditing costs the hot-farm reservation: ``reserve_run`` with a sealer beside the writers vs without.

Since migration 0160 the reservation path writes nothing for the audit (no trigger: the seal reads each
leg from ``credit_ledger``, past the farm's mark), so the whole cost is the sealing step's, on the same
cores as the writers. Reuses ``bench_reserve.py``'s embedded server, fresh database and pgbench runner:
variant (d) ``farmops.reserve_run(...)`` in autocommit as the application role, on ONE hot farm, at 1, 8
and 32 clients, with the WAL flush (synchronous_commit=on) and without it. Two variants, each on its own
hot farm so that each farm's data grows alike: OFF = the writers alone (their legs sealed between slices);
ON+seal = ``farmops.seal_audit()`` in a loop beside the writers (every 50 ms, as a maintenance job would
run it, the audit queue vacuumed once a second as ``farmops audit seal`` does). They alternate slice by
slice (``--reps`` rounds, rotating order, median each, and the ratio rep by rep) in one process, so load
from elsewhere hits them alike. The database also holds ``--idle-farms`` farms with a sealed leg each
(default 10,000): every seal looks for the farms whose ledger grew past their mark among all of them.

Then the CPU: backend CPU per reservation (``/proc/<pid>/schedstat``, scheduling delays excluded) in blocks
of single autocommit ``reserve_run`` calls, and the sealing step's CPU per entry, measured in the sealer's
own backend: in large batches (``--cpu-block`` reservations per seal), in small ones (``--small-block``,
as beside the writers), and a backlog (``--backlog`` reservations written while no sealer ran, after
statistics taken when nothing waited) sealed in one call. After the last cell each farm's chain must
verify, with exactly one entry per ledger leg.

Prints the table and writes it to ``bench/results/audit.txt``. Nothing about time is asserted; the exit
code is 1 only if a chain does not verify.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_reserve as br

from farmops_client import maintenance

RESULTS = br.REPO / "bench" / "results" / "audit.txt"
VARIANTS = ("off", "on+seal", "on+seal-1s")
#: How often each ON variant's sealer calls farmops.seal_audit(): a loop as tight as a job would ever
#: run (each call pays a fixed cost: the farms with legs past their mark are found by reading every
#: farm's ledger_seq), and once a second.
SEAL_EVERY = {"on+seal": 0.05, "on+seal-1s": 1.0}
# As the server has it (fsync, synchronous_commit=on: this shared disk's WAL flush dominates), and
# without the flush wait (synchronous_commit=off: what the audit costs the CPU and the farm row).
MODES = ("synchronous_commit=on", "synchronous_commit=off")


SCRIPT = """SELECT farmops.reserve_run(p_farm_id => :farm::uuid, p_user_id => 'owner', p_feature => 'bench',
    p_model => 'bench-model', p_max_input_tokens => 0, p_max_output_tokens => 0,
    p_request_id => gen_random_uuid()::text);
"""
# Each variant writes its own hot farm, and every farm grows by about as many runs and ledger legs as the
# other. The CPU blocks write a third.
FARM = {
    "off": br.farm_uuid("fused", 2),
    "on+seal": br.farm_uuid("fused", 3),
    "on+seal-1s": br.farm_uuid("fused", 4),
    "cpu": br.farm_uuid("fused", 1),
}


def add_idle_farms(admin: psycopg.Connection, count: int) -> None:
    """``count`` farms with one granted leg each, sealed: the tenants a real installation has besides its
    hot one (superuser, set-based: the bench is about the seal, not about creating farms)."""
    admin.execute(
        "INSERT INTO farmops.farms (id, name, credit_balance, ledger_seq) "
        "SELECT format('0000000f-0000-0000-0000-%%s', lpad(n::text, 12, '0'))::uuid, 'idle ' || n, 100, 1 "
        "FROM generate_series(1, %s) AS n",
        [count],
    )
    admin.execute(
        "INSERT INTO farmops.credit_ledger (farm_id, seq, kind, delta, balance_after, reason, actor) "
        "SELECT f.id, 1, 'grant', 100, 100, 'bench', 'owner' FROM farmops.farms AS f "
        "WHERE f.name LIKE 'idle %%'"
    )
    admin.execute("SELECT farmops.seal_audit()")
    admin.execute("VACUUM ANALYZE")


def pgbench(host, port, dbname, farm: str, clients: int, seconds: float, workdir: Path, flush: bool) -> float:
    """Transactions per second of reserve_run on one farm (pgbench -M prepared, the app login)."""
    script = workdir / "reserve_run.sql"
    script.write_text(SCRIPT)
    cmd = [
        str(br.embedded.bin_dir() / "pgbench"),
        "-h", host, "-p", str(port), "-U", br.APP_LOGIN, "-n", "-M", "prepared",
        "-c", str(clients), "-j", str(min(clients, 4)), "-T", str(max(1, round(seconds))),
        "-D", f"farm={farm}", "-f", str(script), dbname,
    ]  # fmt: skip
    env = dict(os.environ, PGOPTIONS="" if flush else "-c synchronous_commit=off")
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    match = re.search(r"tps = ([\d.]+)", out.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", out.stdout)
    if out.returncode != 0 or match is None or (failed and int(failed.group(1))):
        raise RuntimeError(f"pgbench failed:\n{out.stdout}\n{out.stderr}")
    return float(match.group(1))


CPU_CALL = """SELECT farmops.reserve_run(p_farm_id => %(farm)s, p_user_id => 'owner', p_feature => 'bench',
    p_model => 'bench-model', p_credits => 1, p_request_id => gen_random_uuid()::text)"""


def backend_cpu_ns(pid: int) -> int:
    """CPU time the server process ``pid`` has used, in ns (/proc/<pid>/schedstat: the same host)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def cpu_per_entry(
    host, port, dbname, admin, rounds: int, block: int, small: int, backlog: int
) -> dict[str, float]:
    """Backend CPU microseconds per reservation (median of ``rounds`` blocks of ``block`` single autocommit
    calls, one transaction each, as the application makes them; one session) and the sealing step's CPU
    per entry in another session: ``seal`` after each such block (median), ``seal-small`` after every
    ``small`` reservations (``rounds`` x 8 seals, total / total), and ``seal-backlog``: ``backlog``
    reservations sealed in one call after statistics taken, and plans made, while nothing waited."""
    samples: dict[str, list[float]] = {"reserve": [], "seal": []}
    with (
        psycopg.connect(host=host, port=port, user=br.APP_LOGIN, dbname=dbname, autocommit=True) as conn,
        psycopg.connect(host=host, port=port, user="postgres", dbname=dbname, autocommit=True) as sealer,
    ):
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        seal_pid = sealer.execute("SELECT pg_backend_pid()").fetchone()[0]

        def reserve(n: int) -> None:
            for _ in range(n):
                conn.execute(CPU_CALL, {"farm": FARM["cpu"]}, prepare=True)

        def seal() -> tuple[int, int]:
            before = backend_cpu_ns(seal_pid)
            sealed = sealer.execute("SELECT farmops.seal_audit()").fetchone()[0]
            return sealed, backend_cpu_ns(seal_pid) - before

        seal()
        for _ in range(rounds):
            before = backend_cpu_ns(pid)
            reserve(block)
            samples["reserve"].append((backend_cpu_ns(pid) - before) / block / 1000)
            sealed, ns = seal()
            samples["seal"].append(ns / max(sealed, 1) / 1000)
        small_total = [0, 0]
        for _ in range(rounds * 8):
            reserve(small)
            sealed, ns = seal()
            small_total[0] += sealed
            small_total[1] += ns
        admin.execute("ANALYZE farmops.credit_ledger, farmops.ai_runs, farmops.audit_log, farmops.subjects")
        seal()  # plans made on statistics of nothing waiting
        reserve(backlog)
        sealed, ns = seal()
    result = {k: statistics.median(v) for k, v in samples.items()}
    result["seal-small"] = small_total[1] / max(small_total[0], 1) / 1000
    result["seal-backlog"] = ns / max(sealed, 1) / 1000
    return result


def finder_ms(admin: psycopg.Connection, calls: int = 20) -> float:
    """Milliseconds a seal call spends finding the farms it has entries for
    (``farmops._audit_pending_farms()``: every farm's ledger_seq against its mark), mean of ``calls``."""
    started = time.perf_counter()
    for _ in range(calls):
        admin.execute("SELECT count(*) FROM farmops._audit_pending_farms()").fetchone()
    return (time.perf_counter() - started) / calls * 1000


class Sealer:
    """``farmops.seal_audit()`` in a loop on its own connection while a slice runs (its CPU measured),
    committing as the production job does (no flush wait), the audit queue vacuumed once a second."""

    def __init__(self, host: str, port: int, dbname: str, every: float):
        self.every = every
        self.conn = psycopg.connect(host=host, port=port, user="postgres", dbname=dbname, autocommit=True)
        # As farmops_client.maintenance.seal_audit (farmops audit seal) commits: without the flush wait.
        self.conn.execute("SET synchronous_commit = off")
        self.pid = self.conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        self.stop = threading.Event()
        self.sealed = 0
        self.cpu_ns = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        before = backend_cpu_ns(self.pid)
        vacuumed = time.monotonic()
        while not self.stop.is_set():
            self.sealed += self.conn.execute("SELECT farmops.seal_audit()").fetchone()[0]
            # As `farmops audit seal` run every second would (maintenance.vacuum_audit_queue, PostgreSQL
            # 17+). The reservations queue nothing since 0160: an empty queue's vacuum, for the job's cost.
            if time.monotonic() - vacuumed >= 1:
                maintenance.vacuum_audit_queue(self.conn)
                vacuumed = time.monotonic()
            self.stop.wait(self.every)
        self.cpu_ns = backend_cpu_ns(self.pid) - before

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.conn.close()


def verify(admin: psycopg.Connection, farm: str) -> tuple:
    """(entries, head seq, broken_at_seq, problem, ledger legs without an entry) of one ON farm."""
    admin.execute("SET ROLE farmops_owner")
    try:
        verified = admin.execute(
            "SELECT entries, head_seq, broken_at_seq, problem FROM farmops.verify_audit(%s)", [farm]
        ).fetchone()
        # Every leg has its entry: its own, or (a reserve leg) its reservation's.
        legs_unaudited = admin.execute(
            "SELECT count(*) FROM farmops.credit_ledger AS l WHERE l.farm_id = %s AND NOT EXISTS ("
            "SELECT FROM farmops.audit_log AS a WHERE a.farm_id = l.farm_id AND ("
            "(a.object_table = 'credit_ledger' AND a.object_id = l.seq::text) OR (l.kind = 'reserve' "
            "AND a.object_table = 'ai_runs' AND a.object_id = l.ai_run_id::text)))",
            [farm],
        ).fetchone()[0]
    finally:
        admin.execute("RESET ROLE")
    return (*verified, legs_unaudited)


def paired_ratios(raw: dict[tuple[str, int], dict[str, list[float]]]) -> list[str]:
    """ON+seal against OFF rep by rep (the slices of one rep ran back to back, so drift in the load
    hits both): per cell the median ratio and its quartiles, then every cell's reps pooled. A cell's
    median alone moves by 0.05-0.15 between runs on a shared machine; the quartiles show how far."""

    def spread(ratios: list[float]) -> str:
        if len(ratios) < 2:
            return f"{ratios[0]:.2f}"
        q1, q2, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
        return f"{q2:.2f} [{q1:.2f}-{q3:.2f}]"

    lines = ["paired ratios, rep by rep: median [quartiles]"]
    pooled: dict[str, list[float]] = {v: [] for v in VARIANTS[1:]}
    for (mode, clients), samples in raw.items():
        parts = []
        for variant in VARIANTS[1:]:
            ratios = [x / off for x, off in zip(samples[variant], samples["off"], strict=True)]
            pooled[variant] += ratios
            parts.append(f"{variant}/off {spread(ratios)}")
        lines.append(f"  {mode:<24} {clients:>2} clients: " + "  ".join(parts))
    every = "  ".join(f"{v}/off {spread(r)}" for v, r in pooled.items())
    lines.append(f"  every cell's reps pooled: {every}")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the OFF / ON+seal matrix and the CPU blocks, verify the farms' chains, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each pgbench run (default 2)")
    parser.add_argument("--reps", type=int, default=4, help="alternating runs per cell (median; default 4)")
    parser.add_argument("--cpu-rounds", type=int, default=8, help="CPU blocks (default 8)")
    parser.add_argument("--cpu-block", type=int, default=500, help="reservations per CPU block (default 500)")
    parser.add_argument(
        "--small-block", type=int, default=30, help="reservations per seal in the small batches (default 30)"
    )
    parser.add_argument(
        "--backlog",
        type=int,
        default=5000,
        help="reservations in the backlog sealed in one call (default 5000)",
    )
    parser.add_argument(
        "--idle-farms",
        type=int,
        default=10_000,
        help="farms besides the hot ones, a sealed leg each (10,000)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="where the table is written")
    args = parser.parse_args(argv)

    host, port = br.embedded.serve(br.REPO / ".tmp" / "bench-pg", stop_at_exit=True)
    dbname = br.fresh_database(host, port)
    results: dict[tuple[str, int], dict[str, float]] = {}
    raw: dict[tuple[str, int], dict[str, list[float]]] = {}
    seal_cpu_ns = dict.fromkeys(SEAL_EVERY, 0)
    sealed = dict.fromkeys(SEAL_EVERY, 0)
    load = [os.getloadavg()[0]]
    try:
        with (
            tempfile.TemporaryDirectory() as tmp,
            psycopg.connect(host=host, port=port, user="postgres", dbname=dbname, autocommit=True) as admin,
        ):
            add_idle_farms(admin, args.idle_farms)
            farms = admin.execute("SELECT count(*) FROM farmops.farms").fetchone()[0]
            for mode, clients in [(m, c) for m in MODES for c in br.CLIENTS]:
                samples: dict[str, list[float]] = {v: [] for v in VARIANTS}
                for rep in range(args.reps):
                    order = VARIANTS[rep % len(VARIANTS) :] + VARIANTS[: rep % len(VARIANTS)]
                    for variant in order:
                        admin.execute("SELECT farmops.seal_audit()")
                        maintenance.vacuum_audit_queue(admin)
                        run = (host, port, dbname, FARM[variant], clients, args.seconds, Path(tmp))
                        if variant in SEAL_EVERY:
                            with Sealer(host, port, dbname, SEAL_EVERY[variant]) as sealer:
                                tps = pgbench(*run, mode == MODES[0])
                            seal_cpu_ns[variant] += sealer.cpu_ns
                            sealed[variant] += sealer.sealed
                        else:
                            tps = pgbench(*run, mode == MODES[0])
                        samples[variant].append(tps)
                results[(mode, clients)] = {v: statistics.median(s) for v, s in samples.items()}
                raw[(mode, clients)] = samples
                load.append(os.getloadavg()[0])
                cell = results[(mode, clients)]
                print(
                    f"{mode}, {clients:>2} clients: "
                    + "  ".join(f"{v} {cell[v]:,.0f}/s" for v in VARIANTS)
                    + f"  load {load[-1]:.1f}",
                    flush=True,
                )
            cpu = cpu_per_entry(
                host, port, dbname, admin, args.cpu_rounds, args.cpu_block, args.small_block, args.backlog
            )
            load.append(os.getloadavg()[0])
            print(
                f"CPU per reservation {cpu['reserve']:.0f} us; sealing {cpu['seal']:.0f} us an entry, "
                f"small batches {cpu['seal-small']:.0f}, a backlog {cpu['seal-backlog']:.0f}",
                flush=True,
            )
            admin.execute("SELECT farmops.seal_audit()")
            finder = finder_ms(admin)
            verified = {v: verify(admin, FARM[v]) for v in FARM}
    finally:
        br.drop_database(host, port, dbname)

    lines = [
        f"# audit: reserve_run on one hot farm per variant, without and with a sealer beside the writers "
        f"({datetime.date.today()}, {args.seconds:g} s x {args.reps} alternating reps, median; "
        f"{farms:,} farms; "
        f"load average {min(load):.1f}-{max(load):.1f})",
        "OFF = the writers alone (since 0160 the reservation writes nothing for the audit); ON+seal = "
        "farmops.seal_audit() every 50 ms beside them; ON+seal-1s = every second",
        "commit                   clients  OFF tps  ON+seal  ON+seal-1s  ON+seal/OFF  ON+seal-1s/OFF",
    ]
    for (mode, clients), cell in results.items():
        lines.append(
            f"{mode:<24} {clients:>7}  {cell['off']:>7,.0f}  {cell['on+seal']:>7,.0f}  "
            f"{cell['on+seal-1s']:>10,.0f}  "
            f"{cell['on+seal'] / cell['off']:>11.2f}  {cell['on+seal-1s'] / cell['off']:>14.2f}"
        )
    lines.extend(paired_ratios(raw))
    lines.append(
        f"backend CPU per reservation (median of {args.cpu_rounds} blocks of {args.cpu_block} autocommit "
        f"reserve_run, one session, /proc schedstat): {cpu['reserve']:.0f} us"
    )
    lines.append(
        f"sealing CPU per entry, its own backend: {cpu['seal']:.0f} us in batches of {args.cpu_block} "
        f"(median), {cpu['seal-small']:.0f} us in batches of {args.small_block} (total / total), "
        f"{cpu['seal-backlog']:.0f} us for a backlog of {args.backlog:,} sealed in one call (plans made "
        f"while nothing waited); reservation / (reservation + sealing) "
        f"{cpu['reserve'] / (cpu['reserve'] + cpu['seal']):.2f} in batches of {args.cpu_block}, "
        f"{cpu['reserve'] / (cpu['reserve'] + cpu['seal-small']):.2f} in batches of {args.small_block}"
    )
    lines.append(
        f"finding the farms to seal (every farm's ledger_seq against its mark), after the run: "
        f"{finder:.1f} ms per seal call among {farms:,} farms"
    )
    for variant in SEAL_EVERY:
        lines.append(
            f"sealer beside the writers ({variant} slices): {sealed[variant]:,} entries sealed, "
            f"{seal_cpu_ns[variant] / max(sealed[variant], 1) / 1000:.0f} us CPU per entry"
        )
    for variant, (entries, head_seq, broken, problem, unaudited) in verified.items():
        lines.append(
            f"{variant} farm after the run: {entries} entries, head {head_seq}, broken_at_seq {broken} "
            f"({problem or 'intact'}); ledger legs without an entry: {unaudited}"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    return 0 if all(v[2] is None and v[4] == 0 for v in verified.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
