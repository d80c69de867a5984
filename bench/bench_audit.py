"""What auditing costs the hot-farm reservation: ``reserve_run`` with the audit triggers ON vs OFF.

Reuses ``bench_reserve.py``'s embedded server, fresh database and pgbench runner: variant (d)
``farmops.reserve_run(...)`` in autocommit as the application role, on ONE hot farm, at 1, 8 and 32
clients. OFF = the reservation's audit triggers disabled by the superuser (``ALTER TABLE ... DISABLE
TRIGGER credit_ledger_legs_are_audited``), ON = enabled; the two alternate slice by slice (``--reps``
rounds, median each) in one process, so load from elsewhere hits both alike. ``ON+seal`` is ON
with ``farmops.seal_audit()`` running in a loop beside the writers (the maintenance job at its
busiest). Between slices the pending entries are sealed. After the last cell the chain of the hot
farm must verify, with exactly one entry per ledger leg.

Prints ON/OFF per client count and writes the table to ``bench/results/audit.txt``. Nothing
about time is asserted; the exit code is 1 only if the chain does not verify.
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
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_reserve as br

RESULTS = br.REPO / "bench" / "results" / "audit.txt"
VARIANTS = ("off", "on", "on+seal")
# As the server has it (fsync, synchronous_commit=on: this shared disk's WAL flush dominates), and
# without the flush wait (synchronous_commit=off: what the audit costs the CPU and the farm row).
MODES = ("synchronous_commit=on", "synchronous_commit=off")


SCRIPT = """SELECT farmops.reserve_run(p_farm_id => :farm::uuid, p_user_id => 'owner', p_feature => 'bench',
    p_model => 'bench-model', p_max_input_tokens => 0, p_max_output_tokens => 0,
    p_request_id => gen_random_uuid()::text);
"""
# OFF writes to its own hot farm so that the ON farm's chain stays complete and verifiable.
FARM = {"off": br.farm_uuid("fused", 2), "on": br.farm_uuid("fused", 1), "on+seal": br.farm_uuid("fused", 1)}


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


CPU_BLOCK = """SELECT count(*) FROM generate_series(1, %(n)s) AS g,
    LATERAL farmops.reserve_run(p_farm_id => %(farm)s, p_user_id => 'owner', p_feature => 'bench',
        p_model => 'bench-model', p_credits => 1 + 0 * g, p_request_id => gen_random_uuid()::text) AS r"""


def backend_cpu_ns(pid: int) -> int:
    """CPU time the server process ``pid`` has used, in ns (/proc/<pid>/schedstat: the same host)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def cpu_per_reservation(host, port, dbname, admin, rounds: int, block: int) -> dict[str, float]:
    """Backend CPU microseconds per reservation, audit OFF and ON, in alternating blocks of ``block``
    reservations (one statement each, one session): scheduling delays on a loaded machine do not count."""
    samples: dict[str, list[float]] = {"off": [], "on": []}
    with psycopg.connect(host=host, port=port, user=br.APP_LOGIN, dbname=dbname, autocommit=True) as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        for i in range(rounds):
            for variant in ("off", "on") if i % 2 == 0 else ("on", "off"):
                set_audit(admin, variant == "on")
                before = backend_cpu_ns(pid)
                conn.execute(CPU_BLOCK, {"n": block, "farm": FARM[variant]})
                samples[variant].append((backend_cpu_ns(pid) - before) / block / 1000)
        admin.execute("SELECT farmops.seal_audit()")
    return {v: statistics.median(s) for v, s in samples.items()}


class Sealer:
    """``farmops.seal_audit()`` in a loop on its own connection while a slice runs."""

    def __init__(self, host: str, port: int, dbname: str):
        self.conn = psycopg.connect(host=host, port=port, user="postgres", dbname=dbname, autocommit=True)
        self.stop = threading.Event()
        self.sealed = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            self.sealed += self.conn.execute("SELECT farmops.seal_audit()").fetchone()[0]
            self.stop.wait(0.05)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.conn.close()


def main(argv: list[str] | None = None) -> int:
    """Run the ON/OFF matrix and print it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each pgbench run (default 2)")
    parser.add_argument("--reps", type=int, default=4, help="alternating runs per cell (median; default 4)")
    parser.add_argument("--cpu-rounds", type=int, default=8, help="alternating CPU blocks (default 8)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where the table is written")
    args = parser.parse_args(argv)

    host, port = br.embedded.serve(br.REPO / ".tmp" / "bench-pg", stop_at_exit=True)
    dbname = br.fresh_database(host, port)
    farm = FARM["on"]
    results: dict[tuple[str, int], dict[str, float]] = {}
    try:
        with (
            tempfile.TemporaryDirectory() as tmp,
            psycopg.connect(host=host, port=port, user="postgres", dbname=dbname, autocommit=True) as admin,
        ):
            for mode, clients in [(m, c) for m in MODES for c in br.CLIENTS]:
                samples: dict[str, list[float]] = {v: [] for v in VARIANTS}
                for rep in range(args.reps):
                    order = VARIANTS[rep % 3 :] + VARIANTS[: rep % 3]
                    for variant in order:
                        set_audit(admin, variant != "off")
                        admin.execute("SELECT farmops.seal_audit()")
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
                        if variant == "on+seal":
                            with Sealer(host, port, dbname):
                                tps = pgbench(*run)
                        else:
                            tps = pgbench(*run)
                        samples[variant].append(tps)
                results[(mode, clients)] = {v: statistics.median(s) for v, s in samples.items()}
                cell = results[(mode, clients)]
                print(
                    f"{mode}, {clients:>2} clients: off {cell['off']:,.0f}/s  on {cell['on']:,.0f}/s  "
                    f"on+seal {cell['on+seal']:,.0f}/s  ON/OFF {cell['on'] / cell['off']:.2f}  "
                    f"ON+seal/OFF {cell['on+seal'] / cell['off']:.2f}",
                    flush=True,
                )
            cpu = cpu_per_reservation(host, port, dbname, admin, args.cpu_rounds, 1000)
            print(f"backend CPU per reservation: off {cpu['off']:.0f} us, on {cpu['on']:.0f} us", flush=True)
            set_audit(admin, True)
            admin.execute("SET ROLE farmops_owner")
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
            admin.execute("RESET ROLE")
    finally:
        br.drop_database(host, port, dbname)

    lines = [
        f"# audit ON vs OFF, reserve_run on one hot farm ({datetime.date.today()}, "
        f"{args.seconds:g} s x {args.reps} alternating reps, median)",
        "commit                         clients  OFF tps  ON tps  ON+seal tps  ON/OFF  ON+seal/OFF",
    ]
    for (mode, clients), cell in results.items():
        lines.append(
            f"{mode:<30} {clients:>7}  {cell['off']:>7,.0f}  {cell['on']:>6,.0f}  {cell['on+seal']:>11,.0f}  "
            f"{cell['on'] / cell['off']:>6.2f}  {cell['on+seal'] / cell['off']:>11.2f}"
        )
    lines.append(
        f"backend CPU per reservation (median of {args.cpu_rounds} alternating blocks of 1000 reserve_run, "
        f"one session, /proc schedstat): OFF {cpu['off']:.0f} us, ON {cpu['on']:.0f} us, "
        f"OFF/ON {cpu['off'] / cpu['on']:.2f}"
    )
    lines.append(
        f"ON farm after the run: {verified[0]} entries, head {verified[1]}, broken_at_seq {verified[2]} "
        f"({verified[3] or 'intact'}); ledger legs without an entry: {legs_unaudited}"
    )
    text = "\n".join(lines) + "\n"
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    return 0 if verified[2] is None and legs_unaudited == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
