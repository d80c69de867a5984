"""Where a governed run's database milliseconds go (issue 11, goal 2), measured in one process.

    .venv/bin/python bench/bench_run_profile.py [--runs 40]   # bench/results/run_profile.txt

``t.ask()`` with FakeBedrock and the lexical embedder (a text answer, the bench's shape: a fixed
input bound, one document retrieved), on a warm client, durable and with synchronous_commit=off,
against two databases on one server side by side: one installed from the SQL of ``--before`` (a
git revision, main by default) and one from this tree; the client is this tree's for both. For each
database step (one ``Db`` effect = one round trip) the client's wall time around it, and inside the
server the time of the functions it called (pg_stat_user_functions with track_functions = all, per
run). The side-by-side part alternates batches in child processes. Nothing is asserted.
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
import uuid
from contextlib import contextmanager
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
from common import APP_LOGIN

import farmops_client
from farmops_client import migrate as migrations
from farmops_client.assistant import core, run
from farmops_client.embeddings import LexicalEmbedder
from farmops_client.tenancy import create_app_login
from farmops_client.testing import FakeBedrock, fake_bedrock_client

#: The top-level functions of a text answer's steps (their total time includes what they call).
STEP_FUNCTIONS = (
    "begin_tenant", "reserve_screened_run", "start_run", "record_run_steps", "search_for_run",
    "finish_run",
)  # fmt: skip
PROMPT = "When do I vaccinate broilers?"
#: The server SQL to compare with: main before the server-cuts branch (a git revision).
BEFORE = "4f964e6"
#: One batch of asks in a child process against one database: the db ms of each run after 3 warm-up
#: runs, as JSON on the last line.
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
        "raw": {"wall": walls, "db": dbs, "steps": steps},
    }


def merge(parts: list[dict]) -> dict:
    """One profile of several batches: medians over all their runs, server ms averaged per run."""
    runs = sum(p["runs"] for p in parts)
    steps: dict[str, list[float]] = {}
    for p in parts:
        for name, ms in p["raw"]["steps"].items():
            steps.setdefault(name, []).extend(ms)

    def mean(key: str, name: str, i: int | None = None) -> float:
        vals = [(p[key].get(name, (0, 0)) if i is not None else p[key].get(name, 0)) for p in parts]
        return (
            sum((v[i] if i is not None else v) * p["runs"] for v, p in zip(vals, parts, strict=True)) / runs
        )

    names_server = {n for p in parts for n in p["server"]}
    names_own = {n for p in parts for n in p["own"]}
    return {
        "wall": statistics.median([x for p in parts for x in p["raw"]["wall"]]),
        "db": statistics.median([x for p in parts for x in p["raw"]["db"]]),
        "steps": {name: statistics.median(ms) for name, ms in steps.items()},
        "server": {n: mean("server", n) for n in names_server},
        "own": {n: (mean("own", n, 0), mean("own", n, 1)) for n in names_own},
        "profile": parts[-1]["profile"],
        "runs": runs,
    }


def database_at(host: str, port: int, rev: str) -> str:
    """A fresh database installed from the SQL tree of git revision ``rev`` (this tree's client and
    application login), like ``common.fresh_database``."""
    tree = common.REPO / ".tmp" / f"bench-sql-{rev}"
    subprocess.run(
        f"rm -rf {tree} && mkdir -p {tree} && git archive {rev} sql | tar -x -C {tree}",
        shell=True, check=True, cwd=common.REPO,
    )  # fmt: skip
    dbname = f"farmops_profile_{rev}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(common.dsn(host, port, "postgres", "postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    with psycopg.connect(common.dsn(host, port, "postgres", dbname), autocommit=True) as conn:
        migrations.migrate(conn, root=tree / "sql")
        create_app_login(conn, APP_LOGIN)
        conn.execute("SELECT farmops.set_model_price('*', 1000, 4000, p_source => 'bench default')")
    return dbname


def side_by_side(host: str, port: int, databases: dict[str, str], rounds: int, runs: int) -> dict:
    """db ms per run against each database ({tree: dbname}), each batch in a child process, batches
    alternating (``rounds`` x ``runs`` asks each), durable and without the flush wait:
    {(tree, mode): [ms, ...]}."""
    farms = {}
    for tree, dbname in databases.items():
        with farmops_client.connect(
            common.dsn(host, port, APP_LOGIN, dbname), embedder=LexicalEmbedder()
        ) as c:
            farms[tree] = c.create_farm("side by side", "alice")
            with c.tenant(farms[tree], "alice") as t:
                t.grant_credits(10_000_000, "bench")
                t.ingest_document(
                    "Vaccination", "Vaccinate broilers against Newcastle disease on day 7 and 21."
                )
    out: dict[tuple[str, str], list[float]] = {}
    env = {**os.environ, "PYTHONPATH": str(common.REPO)}
    for _ in range(rounds):
        for mode in ("durable", "async commit"):
            for tree, dbname in databases.items():
                dsn = common.dsn(host, port, APP_LOGIN, dbname)
                if mode == "async commit":
                    dsn += "&options=-c%20synchronous_commit%3Doff"
                done = subprocess.run(
                    [sys.executable, "-c", CHILD, dsn, str(farms[tree]), str(runs)],
                    env=env, check=True, capture_output=True, text=True, cwd=common.REPO,
                )  # fmt: skip
                out.setdefault((tree, mode), []).extend(json.loads(done.stdout.splitlines()[-1]))
    return out


def render_side_by_side(ab: dict, before: str) -> list[str]:
    """p50 / p95 db ms per server tree and mode, and the ratio of the p50s."""
    lines = [
        f"Side by side: db ms of t.ask() (text answer, 3 round trips), the server SQL of {before} (main",
        "before server-cuts) and of this tree, one client, alternating batches in child processes:",
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


def render(results: dict[tuple[str, str], dict], before: str) -> list[str]:
    """Per step client ms and server function ms, before and after (durable and async commit);
    the functions with the most own time before and after (durable); cProfile of the client."""
    keys = list(results)
    head = [f"{'before' if tree == before else 'after'}, {mode}" for tree, mode in keys]
    lines = [
        "Where a governed run's database ms go: t.ask() text answer (fixed input bound, 1 passage),",
        f"FakeBedrock + lexical embedder, warm client, one process; medians per run; before = {before}",
        "",
    ]
    names = list(results[keys[0]]["steps"])
    rows = [[name, *(f"{results[k]['steps'].get(name, 0):.2f}" for k in keys)] for name in names]
    total = {k: sum(results[k]["steps"].values()) for k in keys}
    rows.append(["all steps (round trips, client side)", *(f"{total[k]:.2f}" for k in keys)])
    rows.append(["db ms of the run (wall - model - embedder)", *(f"{results[k]['db']:.2f}" for k in keys)])
    lines += common.table(["step (one round trip each), client ms", *head], rows)
    lines += ["", "Inside the server, per run (pg_stat_user_functions, total time incl. callees), server ms:"]
    srows = [[name, *(f"{results[k]['server'].get(name, 0):.2f}" for k in keys)] for name in STEP_FUNCTIONS]
    srows.append(["sum", *(f"{sum(results[k]['server'].values()):.2f}" for k in keys)])
    lines += common.table(["function", *head], srows)
    durable = [k for k in keys if k[1] == "durable"]
    was, now = results[durable[0]]["own"], results[durable[1]]["own"]
    top = sorted(set(was) | set(now), key=lambda n: -max(was.get(n, (0, 0))[1], now.get(n, (0, 0))[1]))[:18]
    lines += [
        "",
        "The functions with the most own time inside the server (durable), per run, before and after:",
    ]
    lines += common.table(
        ["function", "calls before", "own ms before", "calls after", "own ms after"],
        [
            [
                n,
                f"{was.get(n, (0, 0))[0]:.1f}",
                f"{was.get(n, (0, 0))[1]:.2f}",
                f"{now.get(n, (0, 0))[0]:.1f}",
                f"{now.get(n, (0, 0))[1]:.2f}",
            ]
            for n in top
        ],
    )
    lines += [
        "",
        f"cProfile of the client (after, durable, {results[durable[1]]['runs']} runs), by own time:",
    ]
    lines += [line for line in results[durable[1]]["profile"].splitlines() if line.strip()][:24]
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run it: print the tables and write bench/results/run_profile.txt."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="measured runs per mode (after 3 warm-up)")
    parser.add_argument("--data-dir", type=Path, default=common.DATA_DIR, help="embedded server data")
    parser.add_argument("--before", default=BEFORE, help=f"the server SQL to compare with (default {BEFORE})")
    parser.add_argument("--rounds", type=int, default=4, help="alternating batches per tree and mode")
    args = parser.parse_args(argv)
    host, port = common.serve(args.data_dir)
    databases = {args.before: database_at(host, port, args.before)}
    try:
        databases["this tree"] = common.fresh_database(host, port, "farmops_profile")
        for dbname in databases.values():
            with psycopg.connect(common.dsn(host, port, "postgres", dbname), autocommit=True) as conn:
                conn.execute(f"ALTER DATABASE \"{dbname}\" SET track_functions = 'all'")
        results = {}
        for _ in range(2):  # alternating, so that load drifts hit both alike
            for mode in ("durable", "async commit"):
                for tree, dbname in databases.items():
                    got = profile(host, port, dbname, args.runs // 2, mode)
                    results.setdefault((tree, mode), []).append(got)
        merged = {key: merge(parts) for key, parts in results.items()}
        ab = side_by_side(host, port, databases, args.rounds, max(5, args.runs // args.rounds))
    finally:
        for dbname in databases.values():
            common.drop_database(host, port, dbname)
    lines = [*common.machine(host, port), "", *render_side_by_side(ab, args.before), ""]
    lines += render(merged, args.before)
    text = "\n".join(lines)
    print(text)
    common.write_result("run_profile.txt", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
