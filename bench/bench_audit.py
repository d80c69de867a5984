"""What auditing costs the hot-farm reservation: ``reserve_run`` with the audit triggers ON vs OFF.

Reuses ``bench_reserve.py``'s embedded server, fresh database and pgbench runner: variant (d)
``farmops.reserve_run(...)`` in autocommit as the application role, on ONE hot farm, at 1, 8 and 32 clients,
with the WAL flush (synchronous_commit=on) and without it. Three variants, each on its own hot farm so that
each farm's data grows alike: OFF = the reservation's audit triggers disabled by the superuser (``ALTER
TABLE ... DISABLE TRIGGER``); ON = enabled, the pending entries sealed between slices; ON+seal = enabled
with ``farmops.seal_audit()`` in a loop beside the writers (every 50 ms, as a maintenance job in production
would run it, and the audit queue vacuumed once a second as ``farmops audit seal`` does after each seal:
``--no-vacuum`` leaves it to autovacuum); ON+seal-before = the same with the per-entry seal of main 4f964e6
(``tests/trust/fixtures/seal_per_entry_4f964e6.sql``, loaded beside the set-based one of migration 0145), so
that before and after are measured side by side. The four alternate slice by slice (``--reps`` rounds,
rotating order, median each) in one process, so load from elsewhere hits them alike.

Then the CPU: backend CPU per reservation (``/proc/<pid>/schedstat``, scheduling delays excluded) in
alternating blocks of single autocommit ``reserve_run`` calls, OFF and ON, and the sealing step's
CPU per entry, measured in the sealer's own backend, for both seals in alternating blocks: in large
batches (``--cpu-block`` reservations per seal) and in small ones (``--small-block``, as beside the
writers); and a backlog (``--backlog`` entries appended while no sealer ran, after statistics that saw
an empty ``_audit_pending``) sealed in one call by each. After the last cell every ON farm's chain must
verify, with exactly one entry per ledger leg.

``--farm-key`` re-creates the foreign key from ``audit_log.farm_id`` to ``farms`` that migration 0135
dropped (every sealed entry share-locked the hot farm row until the seal committed), to measure what
it cost. Prints the table and writes it to ``bench/results/audit.txt``. Nothing about time is
asserted; the exit code is 1 only if a chain does not verify.
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
VARIANTS = ("off", "on", "on+seal", "on+seal-before")
#: The per-entry seal that migration 0145 replaced, loaded under its own schema (never installed).
PER_ENTRY_SEAL = br.REPO / "tests" / "trust" / "fixtures" / "seal_per_entry_4f964e6.sql"
SEAL = {"on+seal": "farmops.seal_audit()", "on+seal-before": "audit_seal_per_entry.seal_audit()"}
# As the server has it (fsync, synchronous_commit=on: this shared disk's WAL flush dominates), and
# without the flush wait (synchronous_commit=off: what the audit costs the CPU and the farm row).
MODES = ("synchronous_commit=on", "synchronous_commit=off")


SCRIPT = """SELECT farmops.reserve_run(p_farm_id => :farm::uuid, p_user_id => 'owner', p_feature => 'bench',
    p_model => 'bench-model', p_max_input_tokens => 0, p_max_output_tokens => 0,
    p_request_id => gen_random_uuid()::text);
"""
# Each variant writes its own hot farm: the ON farms' chains stay complete and verifiable, and every farm
# grows by about as many runs and ledger legs as the others.
FARM = {
    "off": br.farm_uuid("fused", 2),
    "on": br.farm_uuid("fused", 1),
    "on+seal": br.farm_uuid("fused", 3),
    "on+seal-before": br.farm_uuid("fused", 4),
}
FARM_KEY = (
    "ALTER TABLE farmops.audit_log ADD CONSTRAINT audit_log_farm_id_fkey "
    "FOREIGN KEY (farm_id) REFERENCES farmops.farms (id)"
)


def set_audit(conn: psycopg.Connection, on: bool) -> None:
    """Enable or disable the audit trigger of the reservation path (superuser)."""
    verb = "ENABLE ALWAYS" if on else "DISABLE"
    conn.execute(f"ALTER TABLE farmops.ai_runs {verb} TRIGGER ai_runs_reservations_are_audited")
    conn.execute(f"ALTER TABLE farmops.credit_ledger {verb} TRIGGER credit_ledger_legs_are_audited")


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


def cpu_per_reservation(host, port, dbname, admin, rounds: int, block: int, small: int) -> dict[str, float]:
    """Backend CPU microseconds per reservation, audit OFF and ON, in alternating blocks of ``block``
    single autocommit calls (one transaction each, as the application makes them; one session), and the
    sealing step's CPU per entry, each ON block's entries sealed by another session: ``seal`` by
    ``farmops.seal_audit()``, ``seal-before`` by the per-entry seal, alternately. Then both seals in
    small batches (``small`` reservations per seal, alternating, 2 x ``rounds`` x 4 of them):
    ``seal-small`` and ``seal-small-before``, total CPU over total entries."""
    samples: dict[str, list[float]] = {"off": [], "on": [], "seal": [], "seal-before": []}
    totals = {"seal-small": [0, 0], "seal-small-before": [0, 0]}
    with (
        psycopg.connect(host=host, port=port, user=br.APP_LOGIN, dbname=dbname, autocommit=True) as conn,
        psycopg.connect(host=host, port=port, user="postgres", dbname=dbname, autocommit=True) as sealer,
    ):
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        seal_pid = sealer.execute("SELECT pg_backend_pid()").fetchone()[0]
        sealer.execute("SELECT farmops.seal_audit()")
        blocks = ("off", "seal", "seal-before")
        for i in range(rounds):
            for kind in blocks[i % 3 :] + blocks[: i % 3]:
                variant = "off" if kind == "off" else "on"
                set_audit(admin, variant == "on")
                conn.execute(CPU_CALL, {"farm": FARM[variant]}, prepare=True)  # replan after the ALTER
                before = backend_cpu_ns(pid)
                for _ in range(block):
                    conn.execute(CPU_CALL, {"farm": FARM[variant]}, prepare=True)
                samples[variant].append((backend_cpu_ns(pid) - before) / block / 1000)
                if variant == "on":
                    before = backend_cpu_ns(seal_pid)
                    sealed = sealer.execute(
                        f"SELECT {SEAL['on+seal' if kind == 'seal' else 'on+seal-before']}"
                    )
                    samples[kind].append(
                        (backend_cpu_ns(seal_pid) - before) / max(sealed.fetchone()[0], 1) / 1000
                    )
        set_audit(admin, True)
        for i in range(rounds * 8):
            kind = ("seal-small", "seal-small-before")[i % 2]
            for _ in range(small):
                conn.execute(CPU_CALL, {"farm": FARM["on"]}, prepare=True)
            before = backend_cpu_ns(seal_pid)
            sealed = sealer.execute(f"SELECT {SEAL['on+seal' if kind == 'seal-small' else 'on+seal-before']}")
            totals[kind][0] += sealed.fetchone()[0]
            totals[kind][1] += backend_cpu_ns(seal_pid) - before
    result = {v: statistics.median(s) for v, s in samples.items()}
    result.update({k: ns / max(n, 1) / 1000 for k, (n, ns) in totals.items()})
    return result


def backlog_cpu(host, port, dbname, admin, entries: int) -> dict[str, float]:
    """Sealing CPU per entry of a backlog: ``_audit_pending``'s statistics taken while it was empty (as
    autovacuum takes them after a seal), the sealer's plans made then (a seal of nothing), then
    ``entries`` reservations appended (a sealer that was down) and sealed in one call; for each seal."""
    result = {}
    with (
        psycopg.connect(host=host, port=port, user=br.APP_LOGIN, dbname=dbname, autocommit=True) as conn,
        psycopg.connect(host=host, port=port, user="postgres", dbname=dbname, autocommit=True) as sealer,
    ):
        pid = sealer.execute("SELECT pg_backend_pid()").fetchone()[0]
        set_audit(admin, True)
        for variant, seal in SEAL.items():
            sealer.execute(f"SELECT {seal}")
            admin.execute("ANALYZE farmops._audit_pending")
            sealer.execute(f"SELECT {seal}")
            for _ in range(entries):
                conn.execute(CPU_CALL, {"farm": FARM["on"]}, prepare=True)
            before = backend_cpu_ns(pid)
            sealed = sealer.execute(f"SELECT {seal}").fetchone()[0]
            result[variant] = (backend_cpu_ns(pid) - before) / max(sealed, 1) / 1000
    return result


class Sealer:
    """A seal (``farmops.seal_audit()``, or the per-entry one) in a loop on its own connection while a slice
    runs (its CPU measured), committing as the production job does (no flush wait)."""

    def __init__(self, host: str, port: int, dbname: str, seal: str = SEAL["on+seal"], vacuum: bool = True):
        self.seal = seal
        self.vacuum = vacuum
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
            self.sealed += self.conn.execute(f"SELECT {self.seal}").fetchone()[0]
            # As `farmops audit seal` run every second would: the queue's dead rows vacuumed once a
            # second (maintenance.vacuum_audit_queue, PostgreSQL 17+), not once a minute by autovacuum.
            if self.vacuum and time.monotonic() - vacuumed >= 1:
                maintenance.vacuum_audit_queue(self.conn)
                vacuumed = time.monotonic()
            self.stop.wait(0.05)
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
    """Each variant against OFF rep by rep (the slices of one rep ran back to back, so drift in the load
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
    """Run the ON/OFF matrix and the CPU blocks, verify the ON farms' chains, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each pgbench run (default 2)")
    parser.add_argument("--reps", type=int, default=4, help="alternating runs per cell (median; default 4)")
    parser.add_argument("--cpu-rounds", type=int, default=8, help="alternating CPU blocks (default 8)")
    parser.add_argument("--cpu-block", type=int, default=500, help="reservations per CPU block (default 500)")
    parser.add_argument(
        "--small-block", type=int, default=30, help="reservations per seal in the small batches (default 30)"
    )
    parser.add_argument(
        "--backlog", type=int, default=5000, help="entries in the backlog sealed in one call (default 5000)"
    )
    parser.add_argument(
        "--farm-key", action="store_true", help="re-create audit_log's farm key (before 0135)"
    )
    parser.add_argument(
        "--no-vacuum", dest="vacuum", action="store_false",
        help="leave the audit queue to autovacuum (the seal job vacuums it once a second by default)",
    )  # fmt: skip
    parser.add_argument("--output", type=Path, default=RESULTS, help="where the table is written")
    args = parser.parse_args(argv)

    host, port = br.embedded.serve(br.REPO / ".tmp" / "bench-pg", stop_at_exit=True)
    dbname = br.fresh_database(host, port)
    results: dict[tuple[str, int], dict[str, float]] = {}
    raw: dict[tuple[str, int], dict[str, list[float]]] = {}
    seal_cpu_ns = {v: 0 for v in SEAL}
    sealed = {v: 0 for v in SEAL}
    load = [os.getloadavg()[0]]
    try:
        with (
            tempfile.TemporaryDirectory() as tmp,
            psycopg.connect(host=host, port=port, user="postgres", dbname=dbname, autocommit=True) as admin,
        ):
            admin.execute(PER_ENTRY_SEAL.read_text())
            if args.farm_key:
                admin.execute(FARM_KEY)
            for mode, clients in [(m, c) for m in MODES for c in br.CLIENTS]:
                samples: dict[str, list[float]] = {v: [] for v in VARIANTS}
                for rep in range(args.reps):
                    order = VARIANTS[rep % len(VARIANTS) :] + VARIANTS[: rep % len(VARIANTS)]
                    for variant in order:
                        set_audit(admin, variant != "off")
                        admin.execute("SELECT farmops.seal_audit()")
                        if args.vacuum:
                            maintenance.vacuum_audit_queue(admin)
                        run = (
                            host,
                            port,
                            dbname,
                            FARM[variant],
                            clients,
                            args.seconds,
                            Path(tmp),
                            mode == MODES[0],
                        )
                        if variant in SEAL:
                            with Sealer(host, port, dbname, SEAL[variant], args.vacuum) as sealer:
                                tps = pgbench(*run)
                            seal_cpu_ns[variant] += sealer.cpu_ns
                            sealed[variant] += sealer.sealed
                        else:
                            tps = pgbench(*run)
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
            cpu = cpu_per_reservation(
                host, port, dbname, admin, args.cpu_rounds, args.cpu_block, args.small_block
            )
            backlog = backlog_cpu(host, port, dbname, admin, args.backlog)
            load.append(os.getloadavg()[0])
            print(
                f"backend CPU per reservation: off {cpu['off']:.0f} us, on {cpu['on']:.0f} us; sealing "
                f"{cpu['seal']:.0f} us per entry (before {cpu['seal-before']:.0f}); small batches "
                f"{cpu['seal-small']:.0f} (before {cpu['seal-small-before']:.0f})",
                flush=True,
            )
            set_audit(admin, True)
            verified = {v: verify(admin, FARM[v]) for v in ("on", *SEAL)}
    finally:
        br.drop_database(host, port, dbname)

    lines = [
        f"# audit ON vs OFF, reserve_run on one hot farm per variant ({datetime.date.today()}, "
        f"{args.seconds:g} s x {args.reps} alternating reps, median"
        + (", audit_log's farm key re-created as before 0135" if args.farm_key else "")
        + ("" if args.vacuum else ", the audit queue left to autovacuum")
        + f"; load average {min(load):.1f}-{max(load):.1f})",
        "ON+seal = the set-based seal (0145) beside the writers; ON+seal-before = the per-entry seal "
        "(4f964e6)",
        "commit                   clients  OFF tps  ON tps  ON+seal  ON+seal-before  ON/OFF  ON+seal/OFF  "
        "ON+seal-before/OFF",
    ]
    for (mode, clients), cell in results.items():
        lines.append(
            f"{mode:<24} {clients:>7}  {cell['off']:>7,.0f}  {cell['on']:>6,.0f}  {cell['on+seal']:>7,.0f}  "
            f"{cell['on+seal-before']:>14,.0f}  {cell['on'] / cell['off']:>6.2f}  "
            f"{cell['on+seal'] / cell['off']:>11.2f}  {cell['on+seal-before'] / cell['off']:>18.2f}"
        )
    lines.extend(paired_ratios(raw))
    lines.append(
        f"backend CPU per reservation (median of {args.cpu_rounds} alternating blocks of {args.cpu_block} "
        f"autocommit reserve_run, one session, /proc schedstat): OFF {cpu['off']:.0f} us, "
        f"ON {cpu['on']:.0f} us, OFF/ON {cpu['off'] / cpu['on']:.2f}"
    )
    lines.append(
        f"sealing CPU per entry, its own backend, after / before: {cpu['seal']:.0f} / "
        f"{cpu['seal-before']:.0f} us in batches of {args.cpu_block} (median of alternating blocks), "
        f"{cpu['seal-small']:.0f} / "
        f"{cpu['seal-small-before']:.0f} us in batches of {args.small_block} (alternating, total / total); "
        f"OFF/(ON + sealing) {cpu['off'] / (cpu['on'] + cpu['seal']):.2f} after, "
        f"{cpu['off'] / (cpu['on'] + cpu['seal-before']):.2f} before"
    )
    lines.append(
        f"a backlog of {args.backlog:,} entries sealed in one call, _audit_pending's statistics taken while "
        f"it was empty: {backlog['on+seal']:.0f} us CPU per entry, "
        f"the per-entry seal {backlog['on+seal-before']:.0f}"
    )
    for variant in SEAL:
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
