"""What observability costs: run steps and metric counters ON vs OFF, side by side in one process.

Starts its own embedded PostgreSQL (data in ``.tmp/bench-pg``), migrates a fresh database and
measures, alternating ON and OFF slices so that load from elsewhere hits both alike:

1. reserve + settle of one run on ONE hot farm (the path the closed-run counters are on; the
   reservation itself is an INSERT and fires no counter): ``reserve_run`` in autocommit, then
   ``begin_tenant`` + ``settle_run`` pipelined, as ``ask()`` does. OFF = the three counter triggers
   disabled.
2. ``t.ask()`` (FakeBedrock, lexical embedder): a text answer and one tool call, round trips counted
   on the wire and wall time per run. OFF = the client sends no steps (``RunRecorder.input_args`` /
   ``pending_args`` give nothing), alternating run by run with ON; the counters stay enabled (their
   settle cost is measured in 1.).

Prints ratios ON / OFF (medians); results in ``bench/results/observe.txt``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_reserve import APP_LOGIN, REPO, TurnCounter

import farmops_client
from farmops_client import embedded
from farmops_client import migrate as migrations
from farmops_client.assistant import steps
from farmops_client.embeddings import LexicalEmbedder
from farmops_client.tenancy import create_app_login
from farmops_client.testing import FakeBedrock, fake_bedrock_client

RESULTS = REPO / "bench" / "results" / "observe.txt"
TRIGGERS = [
    ("farmops.ai_runs", "ai_runs_are_counted_when_closed"),
    ("farmops.assistant_drafts", "assistant_drafts_are_counted_when_made"),
    ("farmops.assistant_drafts", "assistant_drafts_are_counted_when_decided"),
    ("farmops.ai_run_steps", "ai_run_steps_are_counted"),
]


def set_counters(admin: psycopg.Connection, on: bool) -> None:
    for table, trigger in TRIGGERS:
        admin.execute(f"ALTER TABLE {table} {'ENABLE ALWAYS' if on else 'DISABLE'} TRIGGER {trigger}")


class StepsSwitch:
    """Turns the client's step recording off (no-op sends) and back on."""

    def __init__(self):
        self.input_args = steps.RunRecorder.input_args
        self.pending_args = steps.RunRecorder.pending_args

    def set(self, on: bool) -> None:
        steps.RunRecorder.input_args = self.input_args if on else (lambda self: None)
        steps.RunRecorder.pending_args = self.pending_args if on else (lambda self: None)


def settle_loop(conn: psycopg.Connection, farm, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        run = conn.execute(
            "SELECT * FROM farmops.reserve_run(p_farm_id => %s, p_user_id => 'alice', p_feature => 'bench', "
            "p_model => 'bench-model', p_credits => 3)",
            [farm],
        ).fetchone()
        with conn.pipeline():
            conn.execute("SELECT farmops.begin_tenant(%s, 'alice')", [farm])
            conn.execute(
                "SELECT farmops.settle_run(p_run_id => %s, p_status => 'succeeded', p_credits_actual => 1, "
                "p_input_tokens => 10, p_output_tokens => 5)",
                [run[1]],
            )
        out.append((time.perf_counter() - started) * 1000)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=6, help="alternating ON/OFF slices (default 6)")
    parser.add_argument("--settles", type=int, default=150, help="reserve+settle per slice (default 150)")
    parser.add_argument("--asks", type=int, default=15, help="governed runs per kind per slice (default 15)")
    parser.add_argument("--data-dir", type=Path, default=REPO / ".tmp" / "bench-pg")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    host, port = embedded.serve(args.data_dir, stop_at_exit=True)
    dbname = f"farmops_bench_obs_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{dbname}"')
    try:
        with psycopg.connect(host=host, port=port, user="postgres", dbname=dbname) as c:
            migrations.migrate(c)
            create_app_login(c, APP_LOGIN)
            c.commit()
        admin = psycopg.connect(host=host, port=port, user="postgres", dbname=dbname, autocommit=True)
        app = psycopg.connect(host=host, port=port, user=APP_LOGIN, dbname=dbname, autocommit=True)
        farm = app.execute("SELECT farmops.create_farm('bench', 'alice')").fetchone()[0]
        with app.transaction():
            app.execute("SELECT farmops.begin_tenant(%s, 'alice')", [farm])
            app.execute("SELECT farmops.grant_credits(%s, 1000000000, 'bench')", [farm])
            app.execute(
                "SELECT farmops.set_autonomy(p_tier => 'auto', p_auto_categories => %s::jsonb)", ['["note"]']
            )

        switch = StepsSwitch()
        fake = FakeBedrock()
        relay = TurnCounter(host, port)
        client = farmops_client.connect(
            f"host={relay.dir} port={port} dbname={dbname} user={APP_LOGIN}",
            bedrock=fake_bedrock_client(fake),
            embedder=LexicalEmbedder(),
            min_size=1,
            max_size=1,
        )
        settle = {True: [], False: []}
        asks = {(on, kind): [] for on in (True, False) for kind in ("text", "tool")}
        trips = {(on, kind): [] for on in (True, False) for kind in ("text", "tool")}
        # 1. reserve + settle: slices with the counter triggers enabled / disabled (DDL between slices).
        for i in range(args.slices * 2 + 2):
            on = i % 2 == 0
            set_counters(admin, on)
            times = settle_loop(app, farm, args.settles if i >= 2 else 20)
            if i >= 2:
                settle[on] += times
        set_counters(admin, True)
        # 2. t.ask(): counters on; the client's steps on and off alternately, run by run (no DDL).
        for kind in ("text", "tool"):
            for j in range(args.asks * args.slices * 2 + 4):
                on = j % 2 == 0
                switch.set(on)
                if kind == "text":
                    fake.push(FakeBedrock.text("Give water first."))
                else:
                    fake.push(
                        FakeBedrock.tool_use(("create_note", {"title": "water", "body": f"pen {j}"})),
                        FakeBedrock.text("Noted."),
                    )
                with client.tenant(farm, "alice") as t:
                    relay.reset()
                    started = time.perf_counter()
                    t.ask("When do I vaccinate broilers?", max_tokens=100, max_input_tokens=100)
                    elapsed = (time.perf_counter() - started) * 1000
                    rt = relay.reset()
                if j >= 4:
                    asks[(on, kind)].append(elapsed)
                    trips[(on, kind)].append(rt)
        set_counters(admin, True)
        switch.set(True)
        client.close()
        steps_rows = admin.execute("SELECT count(*) FROM farmops.ai_run_steps").fetchone()[0]
        admin.execute("SET ROLE farmops_owner")
        problems = admin.execute("SELECT count(*) FROM farmops.check_invariants()").fetchone()[0]
        admin.execute("RESET ROLE")
        load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"]

        def p(xs, q):
            return statistics.quantiles(xs, n=20)[18] if q == 95 else statistics.median(xs)

        lines = [
            "observability ON vs OFF, side by side in one process (alternating slices; medians)",
            f"settle: {args.slices} slices x {args.settles} per side; "
            f"asks: {args.asks * args.slices} per side and kind; "
            f"load average {' '.join(load)}",
            "",
            f"{'path':34} {'ON p50 ms':>10} {'OFF p50 ms':>10} {'ON/OFF p50':>10} {'ON/OFF p95':>10} "
            f"{'RT ON/OFF':>10}",
        ]
        rows = [("reserve_run + settle_run (hot farm)", settle[True], settle[False], None, None)]
        rows += [
            (
                f"t.ask() {kind}",
                asks[(True, kind)],
                asks[(False, kind)],
                trips[(True, kind)],
                trips[(False, kind)],
            )
            for kind in ("text", "tool")
        ]
        for name, on, off, rt_on, rt_off in rows:
            rt = f"{statistics.median(rt_on):g}/{statistics.median(rt_off):g}" if rt_on else "-"
            lines.append(
                f"{name:34} {p(on, 50):10.2f} {p(off, 50):10.2f} {p(on, 50) / p(off, 50):10.2f} "
                f"{p(on, 95) / p(off, 95):10.2f} {rt:>10}"
            )
        lines += [
            "",
            "settle: ON/OFF = counter triggers enabled/disabled (slices). ask: ON/OFF = the client sends",
            "its steps or not, alternating run by run (input step in the start pipeline, the rest",
            "after settle_run in its pipeline); the counters stay on.",
            "reserve_run is an INSERT: no counter fires on it (bench_reserve.py's matrix is untouched).",
            f"After the run: {steps_rows} step rows, check_invariants problems: {problems}.",
        ]
        text = "\n".join(lines)
        print(text)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
        admin.close()
        app.close()
        return 1 if problems else 0
    finally:
        with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
