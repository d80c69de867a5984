"""What PII redaction and the guards cost on the storage paths, side by side with the same calls
without them, in one process.

Starts its own embedded PostgreSQL (data in ``.tmp/bench-pg``), migrates a fresh database and, as
the application role, times (median of ``--rounds`` alternating slices of ``--calls`` calls):

1. ``farmops.reserve_run`` (the fast path, one autocommit call) with a 200-character
   ``input_summary`` with and without PII and with no summary, with the redaction trigger of
   ``ai_runs`` enabled and disabled (the baseline: what the fast path cost before);
2. ``farmops.screen_input`` on the same prompts against ``farmops.check_text`` alone;
3. ``farmops.check_text(chunk, 'retrieved')`` on four 1,200-character chunks: what
   ``search_for_run`` adds per retrieval.

Prints ratios; asserts nothing about time. Writes the table to ``bench/results/pii_storage.txt``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from farmops_client import embedded  # noqa: E402
from farmops_client import migrate as migrations  # noqa: E402
from farmops_client.tenancy import create_app_login  # noqa: E402

APP_LOGIN = "farmops_bench_app"
PLAIN = (
    "Pen 3 layers: 1,200 birds, 14 mortalities this week, average weight 2.35 kg at day 42. "
    "Feed cost 18000000 kobo for 40 bags; invoice INV-2026-000123, what should I change in the ration?"
)
WITH_PII = (
    "Pen 3 layers: 1,200 birds, 14 mortalities. Call Musa on 0803 123 4567 or mail amina.bello@gmail.com "
    "about the invoice INV-2026-000123 and the 40 bags; what should I change in the ration now?"
)
CHUNK = (
    "Broiler feeding guide, week 3. Provide 120 g per bird per day of grower mash with 21% protein; "
    "water at 200 ml per bird per day, more above 30 degrees. Check drinkers twice a day. "
) * 7
RESERVE = (
    "SELECT id FROM farmops.reserve_run(p_farm_id => %s, p_user_id => 'alice', p_feature => 'bench', "
    "p_model => 'bench-model', p_credits => 1, p_input_summary => %s)"
)


def fresh_database(host: str, port: int) -> str:
    """Create and migrate a new database with the benchmark's application login."""
    dbname = f"farmops_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    with psycopg.connect(host=host, port=port, user="postgres", dbname=dbname) as conn:
        migrations.migrate(conn)
        create_app_login(conn, APP_LOGIN)
        conn.commit()
    return dbname


def slice_ms(fn, calls: int) -> float:
    """Mean ms per call over ``calls`` calls of ``fn``."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) * 1000 / calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--data-dir", type=Path, default=REPO / ".tmp" / "bench-pg")
    args = parser.parse_args(argv)
    host, port = embedded.serve(args.data_dir, stop_at_exit=True)
    dbname = fresh_database(host, port)
    lines: list[str] = []
    try:
        admin = psycopg.connect(host=host, port=port, user="postgres", dbname=dbname, autocommit=True)
        app = psycopg.connect(host=host, port=port, user=APP_LOGIN, dbname=dbname, autocommit=True)
        farm = app.execute("SELECT farmops.create_farm('Bench', 'alice')").fetchone()[0]
        with app.transaction():
            app.execute("SELECT farmops.begin_tenant(%s, 'alice')", [farm])
            app.execute("SELECT farmops.grant_credits(%s, 2000000000, 'bench')", [farm])

        def trigger(on: bool) -> None:
            verb = "ENABLE ALWAYS" if on else "DISABLE"
            admin.execute(f"ALTER TABLE farmops.ai_runs {verb} TRIGGER ai_runs_redacts_pii")

        def reserve(summary):
            return lambda: app.execute(RESERVE, [farm, summary]).fetchone()

        def in_tenant(sql, params):
            def run():
                with app.transaction():
                    app.execute("SELECT farmops.begin_tenant(%s, 'alice')", [farm])
                    app.execute(sql, params).fetchall()

            return run

        cells = {
            "reserve_run, no summary": (reserve(None), True),
            "reserve_run, no summary [trigger off]": (reserve(None), False),
            "reserve_run, 200 chars, no PII": (reserve(PLAIN), True),
            "reserve_run, 200 chars, no PII [trigger off]": (reserve(PLAIN), False),
            "reserve_run, 200 chars, 2 PII": (reserve(WITH_PII), True),
            "reserve_run, 200 chars, 2 PII [trigger off]": (reserve(WITH_PII), False),
            "screen_input, 200 chars, 2 PII": (
                in_tenant("SELECT * FROM farmops.screen_input(%s)", [WITH_PII]),
                True,
            ),
            "check_text input alone": (
                in_tenant("SELECT * FROM farmops.check_text(%s, 'input')", [WITH_PII]),
                True,
            ),
            "redact_pii_for_farm alone": (
                in_tenant("SELECT * FROM farmops.redact_pii_for_farm(%s)", [WITH_PII]),
                True,
            ),
            "check_text then redact, one transaction": (
                in_tenant(
                    "SELECT * FROM farmops.check_text(%s, 'input'), farmops.redact_pii_for_farm(%s)",
                    [WITH_PII, WITH_PII],
                ),
                True,
            ),
            "check_text then redact, text without PII": (
                in_tenant(
                    "SELECT * FROM farmops.check_text(%s, 'input'), farmops.redact_pii_for_farm(%s)",
                    [PLAIN, PLAIN],
                ),
                True,
            ),
            "one ask's screens (input, 4 chunks, output)": (
                in_tenant(
                    "SELECT (SELECT verdict FROM farmops.screen_input(%s)),"
                    " (SELECT count(*) FROM unnest(%s::text[]) AS t, farmops.check_text(t, 'retrieved')),"
                    " (SELECT verdict FROM farmops.check_text(%s, 'output')),"
                    " (SELECT redacted FROM farmops.redact_pii_for_farm(%s))",
                    [WITH_PII, [CHUNK] * 4, WITH_PII, WITH_PII],
                ),
                True,
            ),
            "begin_tenant alone (baseline)": (in_tenant("SELECT 1", []), True),
            "check_text x4 chunks of 1200 chars": (
                in_tenant(
                    "SELECT c.* FROM unnest(%s::text[]) AS t, farmops.check_text(t, 'retrieved') AS c",
                    [[CHUNK] * 4],
                ),
                True,
            ),
        }
        samples: dict[str, list[float]] = {name: [] for name in cells}
        for _ in range(args.rounds):
            for name, (fn, on) in cells.items():
                trigger(on)
                fn()  # warm
                samples[name].append(slice_ms(fn, args.calls))
        trigger(True)
        med = {name: statistics.median(v) for name, v in samples.items()}
        lines.append(
            f"PII and guards on the storage paths: median of {args.rounds} slices x {args.calls} calls"
        )
        lines.append(f"{'cell':48} {'ms/call':>8} {'ratio':>8}")
        for name, ms in med.items():
            base = name + " [trigger off]"
            ratio = f"{ms / med[base]:.2f}x" if base in med else ""
            if name == "screen_input, 200 chars, 2 PII":
                ratio = f"{ms / med['check_text input alone']:.2f}x"
            lines.append(f"{name:48} {ms:8.3f} {ratio:>8}")
        lines.append(
            "ratio: against the same call with the redaction trigger off (screen_input: against check_text)"
        )
        print("\n".join(lines))
        out = REPO / "bench" / "results" / "pii_storage.txt"
        out.write_text("\n".join(lines) + "\n", encoding="utf-8")
        app.close()
        admin.close()
    finally:
        with psycopg.connect(
            host=host, port=port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
