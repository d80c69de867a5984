"""Reservations with spend control on vs off, side by side (issue 14's yardstick).

Reuses bench_reserve.py's server, database and checks. In one process and one run, with
``pgbench -M prepared`` at 1, 8 and 32 clients on ONE hot farm and across 100 farms, the fused
``farmops.reserve_run`` (token bounds 100 + 100, request id) as the application role on:

- (d) farms without policies or limits (spend control off: what every farm had before);
- (f) farms with three reserve policies that match nothing decisive (a deny on a model nobody uses,
  a hold for more than a billion credits, a mask rule that matches every request) and a farm limit
  of 1,000,000 requests and 1,000,000,000 tokens per minute (never reached: every request is
  checked and counted, none refused);
- (g) as (f) plus a per-member limit of 1,000,000 requests and 1,000,000,000 tokens per minute
  (the member's own row is locked and updated in the reservation's statement).

The variants run in alternating slices (median of ``--reps``). After every cell: no overdraft,
``check_invariants`` clean. Writes ``bench/results/reserve-control.txt``. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
from bench_reserve import (
    APP_LOGIN,
    CLIENTS,
    FARM_COUNTS,
    REPO,
    check_cell,
    drop_database,
    fresh_database,
    machine,
)
from psycopg.types.json import Jsonb

from farmops_client import embedded

RESULTS = REPO / "bench" / "results" / "reserve-control.txt"
# Farm ids' variant digit (a uuid hex digit; a-e are bench_reserve's, d = its reserve_run farms).
LETTER = {"off": "d", "policies+farm": "f", "policies+farm+member": "9"}
SCRIPT = """\\set n random(1, :farms)
SELECT farmops.reserve_run(p_farm_id => ('0000000{v}-0000-0000-0000-' || lpad(:n::text, 12, '0'))::uuid,
    p_user_id => 'owner', p_feature => 'bench', p_model => 'bench-model', p_max_input_tokens => 100,
    p_max_output_tokens => 100, p_request_id => gen_random_uuid()::text);
"""


def farm_uuid(letter: str, n: int) -> str:
    return f"0000000{letter}-0000-0000-0000-{n:012d}"


def add_control_farms(host: str, port: int, dbname: str) -> None:
    """Farms (f) and (g): members, credits, the three policies and the limits, set as their owner."""
    n = max(FARM_COUNTS)
    with psycopg.connect(host=host, port=port, user="postgres", dbname=dbname) as conn:
        for letter in ("f", "9"):
            for i in range(1, n + 1):
                conn.execute(
                    "INSERT INTO farmops.farms (id, name) VALUES (%s, %s)", [farm_uuid(letter, i), letter]
                )
                conn.execute(
                    "INSERT INTO farmops.farm_members VALUES (%s, 'owner', 'owner')", [farm_uuid(letter, i)]
                )
        conn.commit()
    with psycopg.connect(host=host, port=port, user=APP_LOGIN, dbname=dbname) as conn:
        for letter in ("f", "9"):
            for i in range(1, n + 1):
                fid = farm_uuid(letter, i)
                with conn.transaction():
                    conn.execute("SELECT farmops.begin_tenant(%s, 'owner')", [fid])
                    conn.execute("SELECT farmops.grant_credits(%s, 1000000000, 'bench')", [fid])
                    conn.execute(
                        "SELECT farmops.set_policy('no-opus', 'reserve', 'deny', 10, p_model => 'opus-never')"
                    )
                    conn.execute(
                        "SELECT farmops.set_policy('hold-huge', 'reserve', 'require_approval', 20, "
                        "p_conditions => %s)",
                        [Jsonb([{"attribute": "credits", "op": "gte", "value": 1_000_000_000}])],
                    )
                    conn.execute(
                        "SELECT farmops.set_policy('mask-phones', 'reserve', 'mask', 30, "
                        "p_masked_kinds => '{phone}')"
                    )
                    conn.execute("SELECT farmops.set_rate_limits(1000000, 1000000000, 'farm')")
                    if letter == "9":
                        conn.execute("SELECT farmops.set_rate_limits(1000000, 1000000000, 'members')")
    with psycopg.connect(host=host, port=port, user="postgres", dbname=dbname, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def pgbench(
    host, port, dbname, letter: str, clients: int, farms: int, seconds: float, workdir: Path
) -> float:
    """Transactions per second of reserve_run on the farms of ``letter`` (bench_reserve's pgbench call)."""
    script = workdir / f"{letter}.sql"
    script.write_text(SCRIPT.format(v=letter))
    cmd = [
        str(embedded.bin_dir() / "pgbench"),
        "-h", host, "-p", str(port), "-U", APP_LOGIN, "-n", "-M", "prepared",
        "-c", str(clients), "-j", str(min(clients, 4)), "-T", str(max(1, round(seconds))),
        "-D", f"farms={farms}", "-f", str(script), dbname,
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    match = re.search(r"tps = ([\d.]+)", out.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", out.stdout)
    if out.returncode != 0 or match is None or (failed and int(failed.group(1))):
        raise RuntimeError(f"pgbench {letter} failed:\n{out.stdout}\n{out.stderr}")
    return float(match.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each pgbench run (default 2)")
    parser.add_argument("--reps", type=int, default=3, help="alternating runs per cell (median; default 3)")
    parser.add_argument(
        "--data-dir", type=Path, default=REPO / ".tmp" / "bench-pg", help="embedded server data"
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="where the table is written")
    args = parser.parse_args(argv)
    host, port = embedded.serve(args.data_dir, stop_at_exit=True)
    dbname = fresh_database(host, port)
    try:
        add_control_farms(host, port, dbname)
        variants = list(LETTER)
        rows, problems = [], []
        with (
            tempfile.TemporaryDirectory() as tmp,
            psycopg.connect(host=host, port=port, user="postgres", dbname=dbname, autocommit=True) as check,
        ):
            for farms in FARM_COUNTS:
                for clients in CLIENTS:
                    samples: dict[str, list[float]] = {v: [] for v in variants}
                    for rep in range(args.reps):
                        for v in variants[rep % 3 :] + variants[: rep % 3]:
                            samples[v].append(
                                pgbench(
                                    host, port, dbname, LETTER[v], clients, farms, args.seconds, Path(tmp)
                                )
                            )
                    tps = {v: statistics.median(s) for v, s in samples.items()}
                    problems += [f"{farms} x {clients}: {p}" for p in check_cell(check)]
                    rows.append((farms, clients, tps))
                    print(f"{farms} farms x {clients} clients: {tps}", file=sys.stderr, flush=True)
        lines = [*machine(host, port, dbname), ""]
        lines.append(
            f"reserve_run per second, pgbench -M prepared, {args.seconds:g} s per run, "
            f"median of {args.reps} alternating runs"
        )
        lines.append(
            f"{'farms':>7} {'clients':>7} {'(d) off':>10} {'(f) pol+farm':>13} {'(g) +member':>12}"
            f" {'f/d':>6} {'g/d':>6}"
        )
        for farms, clients, tps in rows:
            d, f, g = (tps[v] for v in variants)
            lines.append(
                f"{'1 (hot)' if farms == 1 else farms:>7} {clients:>7} {d:>10,.0f} {f:>13,.0f} {g:>12,.0f}"
                f" {f / d:>5.2f}x {g / d:>5.2f}x"
            )
        lines.append(__doc__.split("\n\n", 1)[1].split("\nThe variants")[0])
        lines.append(
            "\nAfter every cell: "
            + (
                f"{len(problems)} PROBLEMS: {problems[:5]}"
                if problems
                else "no overdraft, check_invariants clean."
            )
        )
        text = "\n".join(lines)
        print(text)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
        return 1 if problems else 0
    finally:
        drop_database(host, port, dbname)


if __name__ == "__main__":
    sys.exit(main())
