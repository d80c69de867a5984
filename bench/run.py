"""``make bench``: every fast-path measurement of issue 11 in one run, printed as ONE table.

One embedded server (``.tmp/bench-pg``), one process, each part side by side with its baseline:

1. Reservations per second (``bench_reserve``): the bare conditional UPDATE, the seed's CTE,
   farmops in 4 round trips, ``reserve_run``, and the same three writes as a bare CTE, at 1, 8 and
   32 clients on one hot farm and across 100 farms (pgbench -M prepared, fsync as configured);
   invariants checked after every cell.
2. The governed run (``bench_reserve``): round trips on the wire and database milliseconds of
   ``t.ask()``, a text answer and one tool call.
3. Search (``bench_search``): recall@10 and p50/p95 per farm-size bucket, near and off-topic
   queries, farm-only and with the global base, beside the exact scan (with ``--full``, also beside
   search() as of the commit before this work; quick runs compare it in part 4 only).
4. Fixed costs (``bench_fixed``): microseconds per search call on small farms and per run
   lifecycle of the run-state guard, now and before, measured inside the server.

``--quick`` (the default) finishes in a few minutes on 2 shared cores; ``--full`` runs the
standalone benches' sizes; ``--scale`` the search at 1M rows x 1024-d (a bigger machine: it prints
the memory it expects first). Writes ``bench/results/bench-quick.txt`` (or ``bench-full.txt``,
``bench-scale.txt``) with the machine described. Nothing about time is asserted; the exit code is
1 only if an invariant was violated.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_fixed
import bench_reserve
import bench_search
import common

PARTS = ("reserve", "search", "fixed")


def headline(
    reserve: bench_reserve.ReserveResult | None,
    search: bench_search.SearchResult | None,
    fixed: bench_fixed.Fixed | None,
) -> list[str]:
    """The goals of issue 11, one row each, from the measurements below them."""
    rows: list[list[str]] = []
    if reserve and reserve.matrix:

        def ratios(v: str, base: str, farms: int) -> str:
            cells = [tps for (f, _), tps in reserve.matrix.items() if f == farms]
            return " / ".join(f"{c[v] / c[base]:.2f}x" for c in cells)

        if "fused" in reserve.variants:
            rows += [
                [
                    "1. reserve_run / seed CTE, hot farm, 1/8/32 clients",
                    ">= 1.0x",
                    ratios("fused", "seed", 1),
                ],
                [
                    "   reserve_run / seed CTE, 100 farms, 1/8/32 clients",
                    ">= 0.8x",
                    ratios("fused", "seed", 100),
                ],
                ["   ceiling: the 3 writes as a bare CTE / seed CTE, hot", "", ratios("writes", "seed", 1)],
                ["   ceiling: the same, 100 farms", "", ratios("writes", "seed", 100)],
            ]
        rows.append(
            ["   invariants after every cell", "clean", "clean" if not reserve.problems else "PROBLEMS"]
        )
    if reserve and reserve.runs:
        for kind, m in reserve.runs.items():
            rows.append(
                [
                    f"2. governed run ({kind}): round trips, db ms p50",
                    "<= 4, <= 3 ms",
                    f"{m['round_trips']:.0f}, {m['p50']:.1f} ms "
                    f"({m['async_p50']:.1f} ms without the WAL flush wait)",
                ]
            )
    if search:
        w = search.worst
        rows += [
            [
                "4. search recall@10, worst cell; short answers",
                ">= 0.99; 0",
                f"{w['recall']:.3f}; {w['short']}",
            ],
            [
                "   search p95 / exact scan, worst cell",
                "<= 1.5x",
                f"{w['ratio']:.2f}x ({w['ratio_1ms']:.2f}x where the exact p50 >= 1 ms)",
            ],
        ]
    if fixed:
        small = [(n, us) for (n, g), us in fixed.search.items() if not g and n < 1000]
        now = ", ".join(f"{n} rows {us['now'] / us['exact']:.2f}x" for n, us in small)
        rows.append(["   small farms: search / exact scan, server time", "<= 1.5x", now])
        if fixed.before:
            was = ", ".join(f"{n} rows {us['before'] / us['exact']:.2f}x" for n, us in small)
            rows.append(["   the same before", "", was])
        g = fixed.guard
        guard = f"now {g['bench_after'] - g['bench_none']:+.0f} us"
        if "bench_before" in g:
            guard += f", before {g['bench_before'] - g['bench_none']:+.0f} us"
        rows.append(["3. run-state guard per run lifecycle, over no trigger", "cut", guard])
    return common.table(["goal (issue 11)", "target", "measured"], rows, right=False)


def main(argv: list[str] | None = None) -> int:
    """Run the parts, print one table, write it to bench/results/."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="a few minutes on 2 cores (the default)")
    mode.add_argument("--full", action="store_true", help="the standalone benches' sizes (~15 min)")
    ap.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts ({', '.join(PARTS)})")
    ap.add_argument("--data-dir", type=Path, default=common.DATA_DIR, help="embedded server data")
    ap.add_argument("--output", type=Path, help="default bench/results/bench-<mode>.txt")
    bench_search.add_arguments(ap)
    args = ap.parse_args(argv)
    quick = not args.full and not args.scale
    parts = {p.strip() for p in args.only.split(",") if p.strip()}
    if unknown := parts - set(PARTS):
        ap.error(f"unknown parts: {', '.join(sorted(unknown))}")
    bench_search.resolve(args, quick)
    mode = "scale" if args.scale else "quick" if quick else "full"
    if args.scale:
        common.log("--scale: " + bench_search.expected_scale_memory(args))

    started = time.perf_counter()
    host, port = common.serve(args.data_dir)
    reserve = search = fixed = None
    timings = []
    if "fixed" in parts:
        t = time.perf_counter()
        fixed = bench_fixed.run(
            host, port, dim=args.dim, global_rows=2000, calls=600 if quick else 3000,
            before=args.before or None,
        )  # fmt: skip
        timings.append(f"fixed {time.perf_counter() - t:.0f}s")
    if "reserve" in parts:
        t = time.perf_counter()
        sizes = bench_reserve.QUICK if quick else bench_reserve.FULL
        reserve = bench_reserve.run(
            host, port, seconds=sizes["seconds"], reps=sizes["reps"], runs=sizes["runs"]
        )
        timings.append(f"reservations and governed runs {time.perf_counter() - t:.0f}s")
    if "search" in parts:
        t = time.perf_counter()
        # Quick: search() as before is timed in section 4 only (a third of this part's time).
        search = bench_search.run(
            host, port, argparse.Namespace(**{**vars(args), "before": "" if quick else args.before})
        )
        timings.append(f"search {time.perf_counter() - t:.0f}s")

    lines = [
        f"farmops benchmark ({mode}): issue 11's goals measured side by side in one run",
        *common.machine(host, port),
        "The machine is shared (2 cores, other jobs running: see the load average): every number below is",
        "noisy; compare the ratios within this run, not absolute values across runs.",
        "",
        *headline(reserve, search, fixed),
    ]
    if reserve and reserve.matrix:
        lines += ["", "== 1. Reservations", *bench_reserve.render_matrix(reserve)]
    if reserve and reserve.runs:
        lines += ["", "== 2. Governed run", *bench_reserve.render_runs(reserve)]
    if search:
        lines += ["", "== 3. Search quality and latency per farm-size bucket", *bench_search.render(search)]
    if fixed:
        lines += ["", "== 4. Fixed costs per call, before and after", *bench_fixed.render(fixed)]
    lines += ["", f"took {time.perf_counter() - started:.0f}s ({', '.join(timings)})"]
    text = "\n".join(lines)
    print(text)
    path = args.output or common.RESULTS / f"bench-{mode}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    common.log(f"written to {path}")
    return 1 if reserve and reserve.problems else 0


if __name__ == "__main__":
    sys.exit(main())
