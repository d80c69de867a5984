"""Where a governed run's database milliseconds go (issue 11, goal 2), measured in one process.

    .venv/bin/python bench/bench_run_profile.py [--runs 40]   # bench/results/run_profile.txt

``t.ask()`` with FakeBedrock and the lexical embedder (a text answer, the bench's shape: a fixed
input bound, one document retrieved), on a warm client, durable and with synchronous_commit=off
side by side. For each database step (one ``Db`` effect = one round trip) the client's wall time
around it, and inside the server the time of the functions it called (pg_stat_user_functions with
track_functions = all, per run). The rest of the run's "db ms" is the client's own Python: the
run's rules, building the requests, the RunRecorder and its (no-op) OpenTelemetry spans, psycopg
(adaptation, pipeline), the pool; cProfile names the top of it. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
from common import APP_LOGIN

import farmops_client
from farmops_client.assistant import core, run
from farmops_client.embeddings import LexicalEmbedder
from farmops_client.testing import FakeBedrock, fake_bedrock_client

#: The top-level functions of a text answer's steps (their total time includes what they call).
STEP_FUNCTIONS = (
    "begin_tenant", "reserve_screened_run", "start_run", "record_run_steps", "search_for_run",
    "finish_run",
)  # fmt: skip
PROMPT = "When do I vaccinate broilers?"
#: The client before the fused calls (5 round trips for a text answer), for the side-by-side part.
BEFORE = "2fe46bd"
#: One batch of asks in a child process, for either client (``sys.path`` picks which): the db ms of
#: each run after 3 warm-up runs, as JSON on the last line.
CHILD = """
import json, sys, time
import farmops_client
from farmops_client.embeddings import LexicalEmbedder
from farmops_client.testing import FakeBedrock, fake_bedrock_client
dsn, farm, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
outside = [0.0]
class Timed(LexicalEmbedder):
    def embed(self, texts):
        t = time.perf_counter()
        try:
            return super().embed(texts)
        finally:
            outside[0] += time.perf_counter() - t
fake = FakeBedrock()
bedrock = fake_bedrock_client(fake)
converse = bedrock.converse
def timed_converse(**kw):
    t = time.perf_counter()
    try:
        return converse(**kw)
    finally:
        outside[0] += time.perf_counter() - t
bedrock.converse = timed_converse
out = []
with farmops_client.connect(dsn, bedrock=bedrock, embedder=Timed(), min_size=1, max_size=1) as c:
    for i in range(runs + 3):
        fake.push(FakeBedrock.text("Give water first."))
        with c.tenant(farm, "alice") as t:
            outside[0] = 0.0
            started = time.perf_counter()
            t.ask("When do I vaccinate broilers?", max_tokens=100, max_input_tokens=100)
            wall = time.perf_counter() - started
        if i >= 3:
            out.append((wall - outside[0]) * 1000)
print(json.dumps(out))
"""


def label(effect: core.Db) -> str:
    """A step's name: its calls, joined."""
    names = []
    for step in effect.steps:
        if isinstance(step, core.Call):
            names.append(step.function)
        elif "reserve_screened_run" in step.query:
            names.append("reserve_screened_run")
        elif "finish_run" in step.query:
            names.append("finish_run")
        else:
            names.append("statement")
    return "+".join(names)


def function_times(conn: psycopg.Connection) -> dict[str, tuple[int, float, float]]:
    """{function: (calls, total ms, self ms)} of farmops' functions, from this database's statistics."""
    conn.execute("SELECT pg_stat_force_next_flush()")
    rows = conn.execute(
        "SELECT funcname, sum(calls)::bigint, sum(total_time), sum(self_time) FROM pg_stat_user_functions"
        " WHERE schemaname = 'farmops' GROUP BY funcname"
    ).fetchall()
    return {name: (calls, total, own) for name, calls, total, own in rows}


def profile(host: str, port: int, dbname: str, runs: int, mode: str) -> dict:
    """Per-step client ms, server function ms per run, wall and outside ms; cProfile of the client."""
    outside = [0.0]

    @contextmanager
    def timed():
        started = time.perf_counter()
        try:
            yield
        finally:
            outside[0] += time.perf_counter() - started

    class TimedEmbedder(LexicalEmbedder):
        def embed(self, texts):
            with timed():
                return super().embed(texts)

    fake = FakeBedrock()
    bedrock = fake_bedrock_client(fake)
    converse = bedrock.converse

    def timed_converse(**kwargs):
        with timed():
            return converse(**kwargs)

    bedrock.converse = timed_converse
    steps: dict[str, list[float]] = {}
    real_db = run._Effects.db

    def db(self, effect):
        started = time.perf_counter()
        try:
            return real_db(self, effect)
        finally:
            steps.setdefault(label(effect), []).append((time.perf_counter() - started) * 1000)

    dsn = common.dsn(host, port, APP_LOGIN, dbname)
    if mode == "async commit":
        dsn += "&options=-c%20synchronous_commit%3Doff"
    admin = psycopg.connect(common.dsn(host, port, "postgres", dbname), autocommit=True)
    walls, dbs = [], []
    profiler = cProfile.Profile()
    with farmops_client.connect(dsn, bedrock=bedrock, embedder=TimedEmbedder(), min_size=1, max_size=1) as c:
        farm = c.create_farm(f"profile {mode}", "alice")
        with c.tenant(farm, "alice") as t:
            t.grant_credits(1_000_000, "bench")
            t.ingest_document("Vaccination", "Vaccinate broilers against Newcastle disease on day 7 and 21.")
        run._Effects.db = db
        try:
            for i in range(runs + 3):
                if i == 3:  # warm: pooled connection, plans, caches
                    steps.clear()
                    before = function_times(admin)
                fake.push(FakeBedrock.text("Give water first."))
                with c.tenant(farm, "alice") as t:
                    outside[0] = 0.0
                    started = time.perf_counter()
                    if i >= 3:
                        profiler.enable()
                    t.ask(PROMPT, max_tokens=100, max_input_tokens=100)
                    if i >= 3:
                        profiler.disable()
                    wall = time.perf_counter() - started
                if i >= 3:
                    walls.append(wall * 1000)
                    dbs.append((wall - outside[0]) * 1000)
        finally:
            run._Effects.db = real_db
    after = function_times(admin)
    admin.close()
    server = {
        name: (after[name][1] - before.get(name, (0, 0.0, 0.0))[1]) / runs
        for name in STEP_FUNCTIONS
        if name in after
    }
    own = {
        name: (
            (after[name][0] - before.get(name, (0, 0.0, 0.0))[0]) / runs,
            (after[name][2] - before.get(name, (0, 0.0, 0.0))[2]) / runs,
        )
        for name in after
    }
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(14)
    return {
        "wall": statistics.median(walls),
        "db": statistics.median(dbs),
        "steps": {name: statistics.median(ms) for name, ms in steps.items()},
        "server": server,
        "own": own,
        "profile": text.getvalue(),
        "runs": runs,
    }


def side_by_side(host: str, port: int, dbname: str, rounds: int, runs: int, before: str) -> dict:
    """db ms per run of the client before (``before``, its tree from git) and this one, each in a child
    process, batches alternating (``rounds`` x ``runs`` asks each), on one farm, durable and without
    the flush wait: {(client, mode): [ms, ...]}."""
    old = common.REPO / ".tmp" / f"bench-client-{before}"
    subprocess.run(
        f"rm -rf {old} && mkdir -p {old} && git archive {before} farmops_client | tar -x -C {old}",
        shell=True, check=True, cwd=common.REPO,
    )  # fmt: skip
    with farmops_client.connect(common.dsn(host, port, APP_LOGIN, dbname), embedder=LexicalEmbedder()) as c:
        farm = c.create_farm("side by side", "alice")
        with c.tenant(farm, "alice") as t:
            t.grant_credits(10_000_000, "bench")
            t.ingest_document("Vaccination", "Vaccinate broilers against Newcastle disease on day 7 and 21.")
    out: dict[tuple[str, str], list[float]] = {}
    for _ in range(rounds):
        for mode in ("durable", "async commit"):
            dsn = common.dsn(host, port, APP_LOGIN, dbname)
            if mode == "async commit":
                dsn += "&options=-c%20synchronous_commit%3Doff"
            for client, path in ((before, old), ("this tree", common.REPO)):
                env = {**os.environ, "PYTHONPATH": str(path)}
                done = subprocess.run(
                    [sys.executable, "-c", CHILD, dsn, str(farm), str(runs)],
                    env=env, check=True, capture_output=True, text=True, cwd=path,
                )  # fmt: skip
                out.setdefault((client, mode), []).extend(json.loads(done.stdout.splitlines()[-1]))
    return out


def render_side_by_side(ab: dict, before: str) -> list[str]:
    """p50 / p95 db ms per client and mode, and the ratio of the p50s."""
    lines = [
        f"Side by side: db ms of t.ask() (text answer), the client before the fused calls ({before}: 5 round",
        "trips) and this tree (3), alternating batches in child processes on one farm:",
    ]
    rows = []
    for mode in ("durable", "async commit"):
        old, new = ab[(before, mode)], ab[("this tree", mode)]
        p50_old, p50_new = statistics.median(old), statistics.median(new)
        was = f"{p50_old:.2f} / {common.quantile(old, 0.95):.2f}"
        now = f"{p50_new:.2f} / {common.quantile(new, 0.95):.2f}"
        rows.append([mode, was, now, f"{p50_new / p50_old:.2f}x", str(len(new))])
    lines += common.table(["commit", f"{before} p50 / p95", "this tree p50 / p95", "p50 ratio", "runs"], rows)
    return lines


def render(results: dict[str, dict]) -> list[str]:
    """The table: per step, client ms (median) durable and without the flush wait; server ms."""
    lines = [
        "Where a governed run's database ms go: t.ask() text answer (fixed input bound, 1 passage),",
        "FakeBedrock + lexical embedder, warm client, one process; medians per run",
        "",
    ]
    modes = list(results)
    rows = []
    names = list(results[modes[0]]["steps"])
    for name in names:
        rows.append([name, *(f"{results[m]['steps'].get(name, 0):.2f}" for m in modes)])
    total = {m: sum(results[m]["steps"].values()) for m in modes}
    rows.append(["all steps (round trips, client side)", *(f"{total[m]:.2f}" for m in modes)])
    rows.append(["db ms of the run (wall - model - embedder)", *(f"{results[m]['db']:.2f}" for m in modes)])
    rows.append(
        [
            "  of which outside the steps (client Python)",
            *(f"{results[m]['db'] - total[m]:.2f}" for m in modes),
        ]
    )
    lines += common.table(["step (one round trip each)", *[f"client ms, {m}" for m in modes]], rows)
    lines += ["", "Inside the server, per run (pg_stat_user_functions, total time incl. callees):"]
    srows = [[name, *(f"{results[m]['server'].get(name, 0):.2f}" for m in modes)] for name in STEP_FUNCTIONS]
    srows.append(["sum", *(f"{sum(results[m]['server'].values()):.2f}" for m in modes)])
    lines += common.table(["function", *[f"server ms, {m}" for m in modes]], srows)
    first = results[modes[0]]["own"]
    top = sorted(first, key=lambda name: -first[name][1])[:14]
    lines += ["", f"The functions with the most own time inside the server ({modes[0]}), per run:"]
    lines += common.table(
        ["function", "calls", "own ms"], [[n, f"{first[n][0]:.1f}", f"{first[n][1]:.2f}"] for n in top]
    )
    lines += ["", f"cProfile of the client ({modes[0]}, {results[modes[0]]['runs']} runs), by own time:"]
    lines += [line for line in results[modes[0]]["profile"].splitlines() if line.strip()][:24]
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run it: print the tables and write bench/results/run_profile.txt."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="measured runs per mode (after 3 warm-up)")
    parser.add_argument("--data-dir", type=Path, default=common.DATA_DIR, help="embedded server data")
    parser.add_argument("--before", default=BEFORE, help=f"the client to compare with (default {BEFORE})")
    parser.add_argument("--rounds", type=int, default=4, help="alternating batches per client and mode")
    args = parser.parse_args(argv)
    host, port = common.serve(args.data_dir)
    dbname = common.fresh_database(host, port, "farmops_profile")
    try:
        with psycopg.connect(common.dsn(host, port, "postgres", dbname), autocommit=True) as conn:
            conn.execute(f"ALTER DATABASE \"{dbname}\" SET track_functions = 'all'")
        results = {mode: profile(host, port, dbname, args.runs, mode) for mode in ("durable", "async commit")}
        ab = side_by_side(host, port, dbname, args.rounds, max(5, args.runs // args.rounds), args.before)
    finally:
        common.drop_database(host, port, dbname)
    lines = [*common.machine(host, port), "", *render_side_by_side(ab, args.before), "", *render(results)]
    text = "\n".join(lines)
    print(text)
    common.write_result("run_profile.txt", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
