"""Reservations with a money budget ON against the same reservations without one, side by side.

Reuses ``bench_reserve.py``'s fresh database and its fused ``reserve_run`` pgbench script (one
autocommit call as the application role, token bounds, a request id), at 1, 8 and 32 clients on ONE
hot farm and across 100 farms:

- (d) off: farms without a budget (the reservation still looks up the model's price: OF410 fails
  closed; and probes ``farmops.budgets``: none);
- (f) on: the same script on farms that each have a farm-wide monthly budget and a daily budget of
  the script's feature (two budget periods held per reservation, alerts checked), with limits far
  above what the run spends, so every reservation pays the hold and none is refused.

Alternating slices (``--reps`` rounds, median per variant). After every cell: no overdraft,
``check_invariants`` clean, and for every budget spent + held within its limit and equal to the
holds of live runs. Writes ``bench/results/budgets.txt``. Nothing about time is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_reserve as br

VARIANTS = ["fused", "budget"]
br.LETTER["budget"] = "f"
br.LABEL["fused"], br.LABEL["budget"] = "(d) budget off", "(f) budget on"
RESULTS = br.REPO / "bench" / "results" / "budgets.txt"


def add_budget_farms(host: str, port: int, dbname: str) -> None:
    """Farms 0000000f-... with members, credits and two budgets each (as the owner member)."""
    n = max(br.FARM_COUNTS)
    with psycopg.connect(host=host, port=port, user="postgres", dbname=dbname) as conn:
        for i in range(1, n + 1):
            fid = br.farm_uuid("budget", i)
            conn.execute("INSERT INTO farmops.farms (id, name) VALUES (%s, %s)", [fid, f"budget {i}"])
            conn.execute("INSERT INTO farmops.farm_members VALUES (%s, 'owner', 'owner')", [fid])
        conn.commit()
    with psycopg.connect(host=host, port=port, user=br.APP_LOGIN, dbname=dbname) as conn:
        for i in range(1, n + 1):
            fid = br.farm_uuid("budget", i)
            with conn.transaction():
                conn.execute("SELECT farmops.begin_tenant(%s, 'owner')", [fid])
                conn.execute(
                    "SELECT farmops.grant_credits(p_farm_id => %s, p_credits => %s, p_reason => 'bench')",
                    [fid, br.STARTING_CREDITS],
                )
                conn.execute(
                    "SELECT farmops.set_budget(p_period => 'month', p_limit_micro_usd => 1000000000000000)"
                )
                conn.execute(
                    "SELECT farmops.set_budget(p_period => 'day', p_feature => 'bench',"
                    " p_limit_micro_usd => 1000000000000000)"
                )
    with psycopg.connect(host=host, port=port, user="postgres", dbname=dbname, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def pgbench(
    host, port, dbname, variant: str, clients: int, farms: int, seconds: float, workdir: Path
) -> float:
    """bench_reserve's pgbench of (d), pointed at the budget farms (0000000f-...) for (f): same script, same
    application login."""
    if variant != "budget":
        return br.pgbench(host, port, dbname, variant, clients, farms, seconds, workdir)
    saved, br.LETTER["fused"] = br.LETTER["fused"], br.LETTER["budget"]
    try:
        return br.pgbench(host, port, dbname, "fused", clients, farms, seconds, workdir)
    finally:
        br.LETTER["fused"] = saved


def check_budgets(conn: psycopg.Connection) -> list[str]:
    """Budget problems: spent + held above the limit, or held not equal to the live runs' holds."""
    return [
        f"budget {r[0]} period {r[1]}: spent {r[2]} held {r[3]} limit {r[4]} holds {r[5]}"
        for r in conn.execute(
            "SELECT u.budget_id, u.period_start, u.spent_micro_usd, u.held_micro_usd, b.limit_micro_usd,"
            " h.held FROM farmops.budget_usage u"
            " JOIN farmops.budgets b ON b.farm_id = u.farm_id AND b.id = u.budget_id"
            " CROSS JOIN LATERAL (SELECT coalesce(sum(x.held_micro_usd), 0) AS held"
            "   FROM farmops.budget_holds x WHERE x.farm_id = u.farm_id AND x.budget_id = u.budget_id"
            "   AND x.period_start = u.period_start) h"
            " WHERE u.spent_micro_usd + u.held_micro_usd > b.limit_micro_usd OR u.held_micro_usd <> h.held"
        )
    ]


def matrix(host, port, dbname, seconds: float, reps: int, log) -> tuple[dict, list[str]]:
    """{(farms, clients): {variant: median tps}} and the problems found after the cells."""
    results: dict = {}
    problems: list[str] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        psycopg.connect(host=host, port=port, user="postgres", dbname=dbname, autocommit=True) as check,
    ):
        for farms in br.FARM_COUNTS:
            for clients in br.CLIENTS:
                samples: dict[str, list[float]] = {v: [] for v in VARIANTS}
                for rep in range(reps):
                    for variant in VARIANTS[rep % 2 :] + VARIANTS[: rep % 2]:
                        tps = pgbench(host, port, dbname, variant, clients, farms, seconds, Path(tmp))
                        samples[variant].append(tps)
                results[(farms, clients)] = {v: statistics.median(s) for v, s in samples.items()}
                found = br.check_cell(check) + check_budgets(check)
                problems += [f"{farms} farms x {clients} clients: {p}" for p in found]
                tps = results[(farms, clients)]
                cell = f"{farms:>3} farms x {clients:>2} clients"
                log(f"{cell}: off {tps['fused']:,.0f}/s, on {tps['budget']:,.0f}/s"
                    + ("" if not found else f"  {len(found)} PROBLEMS"))  # fmt: skip
    return results, problems


def render(results: dict, header: list[str], seconds: float, reps: int) -> str:
    title = "reserve_run per second, budget off vs on: pgbench -M prepared"
    lines = [*header, "", f"{title}, {seconds:g} s per run, median of {reps} alternating runs"]
    lines.append(f"{'farms':>8}  {'clients':>7}  {'(d) off':>10}  {'(f) on':>10}  {'on/off':>7}")
    for (farms, clients), tps in results.items():
        label = "1 (hot)" if farms == 1 else str(farms)
        lines.append(
            f"{label:>8}  {clients:>7}  {tps['fused']:>10,.0f}  {tps['budget']:>10,.0f}  "
            f"{tps['budget'] / tps['fused']:>6.2f}x"
        )
    lines.append(
        "(d) farmops.reserve_run(farm, user, 'bench', 'bench-model', token bounds, request id) on farms\n"
        "    without a budget; (f) the same on farms with a monthly and a per-feature daily budget\n"
        "    (both held)."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each pgbench run (default 2)")
    parser.add_argument("--reps", type=int, default=3, help="alternating runs per cell (median; default 3)")
    parser.add_argument(
        "--data-dir", type=Path, default=br.REPO / ".tmp" / "bench-pg", help="embedded server"
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="where the table is written")
    args = parser.parse_args(argv)
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731

    host, port = br.embedded.serve(args.data_dir, stop_at_exit=True)
    dbname = br.fresh_database(host, port)
    try:
        add_budget_farms(host, port, dbname)
        results, problems = matrix(host, port, dbname, args.seconds, args.reps, log)
        text = render(results, br.machine(host, port, dbname), args.seconds, args.reps)
        verdict = "no overdraft, check_invariants clean, every budget's spent + held within its limit."
        text += "\n\nAfter every cell: " + (
            f"{len(problems)} PROBLEMS: {problems[:5]}" if problems else verdict
        )
        print(text)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
        return 1 if problems else 0
    finally:
        br.drop_database(host, port, dbname)


if __name__ == "__main__":
    sys.exit(main())
