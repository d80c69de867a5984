"""PII redaction: precision / recall per kind on the labelled corpus, and cost per KB of text.

Starts its own embedded PostgreSQL (data in ``.tmp/bench-pg``), migrates a fresh database and,
as the application role (no tenant), prints:

1. the corpus table (tests/trust/pii_corpus.jsonl, exact-span match per kind);
2. ms per KB of ``farmops.redact_pii`` on farm-like text without PII, with PII (about one finding
   per 80 bytes), both as 1 KB messages and as one 1 MB text, and on 1 MB of adversarial text
   (long digit runs, card-shaped and phone-shaped repetitions, colon and dot runs) -- side by side
   with two baselines measured the same way in the same process: ``length(t)`` (the cost of
   shipping the text and calling a function) and one ``regexp_replace`` of an e-mail pattern.

Each cell alternates the three calls for ``--rounds`` rounds and reports the median. Prints; asserts
nothing about time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

import psycopg
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "trust"))

from pii_scoring import KINDS, load_corpus, run_corpus, score  # noqa: E402

from farmops_client import embedded  # noqa: E402
from farmops_client import migrate as migrations  # noqa: E402
from farmops_client.tenancy import create_app_login  # noqa: E402

APP_LOGIN = "farmops_bench_app"
CALLS = {
    "redact_pii": "SELECT (farmops.redact_pii(t)).redacted FROM unnest(%s::text[]) AS t",
    "length() baseline": "SELECT length(t) FROM unnest(%s::text[]) AS t",
    "1 regexp_replace baseline": (
        "SELECT regexp_replace(t, '[A-Za-z0-9._%%+-]+@[A-Za-z0-9.-]+[.][A-Za-z]{2,}', '[EMAIL]', 'g') "
        "FROM unnest(%s::text[]) AS t"
    ),
}
FARM = (
    "Pen 3 layers: 1,200 birds, 14 mortalities this week, average weight 2.35 kg at day 42. Feed cost "
    "18000000 kobo (₦180,000) for 40 bags; invoice INV-2026-000123, batch BATCH-4471-22, next Gumboro "
    "dose 2026-11-30. Water 245.5 L per 1000 birds, 31.5 °C in house 2 — ventilation ok. 🐔\n"
)
PII = (
    "Call Musa on 0803 123 4567 or +234 805 987 6543, mail amina.bello@gmail.com; card 4111 1111 1111 "
    "1111, IBAN GB82 WEST 1234 5698 7654 32, NIN: 12345678901, camera 192.168.1.20, api_key=9f8e7d6c5b4a39. "
)


def fill(unit: str, size: int) -> str:
    """``unit`` repeated to about ``size`` bytes (UTF-8)."""
    return unit * max(1, size // len(unit.encode()))


def fresh_database(host: str, port: int) -> str:
    """Create and migrate a new database; add the benchmark's application login role."""
    dbname = f"farmops_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    with psycopg.connect(host=host, port=port, user="postgres", dbname=dbname) as conn:
        migrations.migrate(conn)
        create_app_login(conn, APP_LOGIN)  # a login of this installation (CONNECT, allow-list)
        conn.commit()
    return dbname


def timed(conn: psycopg.Connection, sql: str, texts: list[str]) -> float:
    start = time.perf_counter()
    conn.execute(sql, [texts]).fetchall()
    return time.perf_counter() - start


def cost_table(conn: psycopg.Connection, rounds: int) -> Table:
    """ms per KB for each workload and call, medians over alternating rounds."""
    workloads = {
        "farm text, no PII, 1 KB x 200": [fill(FARM, 1000)] * 200,
        "farm text + PII, 1 KB x 200": [fill(FARM + PII, 1000)] * 200,
        "farm text, no PII, 1 MB": [fill(FARM, 1_000_000)],
        "farm text + PII, 1 MB": [fill(FARM + PII, 1_000_000)],
        "adversarial: one 1 MB digit run": [fill("1234567890", 1_000_000)],
        "adversarial: 4111 1111 1111 1111 x 1 MB": [fill("4111 1111 1111 1111 ", 1_000_000)],
        "adversarial: 0803 0803 ... x 1 MB": [fill("0803 ", 1_000_000)],
        "adversarial: a:b:1.2.3.4. x 1 MB": [fill("a:b:1.2.3.4.", 1_000_000)],
    }
    table = Table(title=f"cost per KB (median of {rounds} rounds, application role)")
    table.add_column("text")
    table.add_column("KB", justify="right")
    table.add_column("findings", justify="right")
    for name in CALLS:
        table.add_column(f"{name} ms/KB", justify="right")
    table.add_column("redact / length()", justify="right")
    for label, texts in workloads.items():
        kb = sum(len(t.encode()) for t in texts) / 1024
        (findings,) = conn.execute(
            "SELECT sum(jsonb_array_length((farmops.redact_pii(t)).findings)) FROM unnest(%s::text[]) AS t",
            [texts],
        ).fetchone()
        samples: dict[str, list[float]] = {name: [] for name in CALLS}
        for _ in range(rounds):
            for name, sql in CALLS.items():
                samples[name].append(timed(conn, sql, texts))
        ms = {name: statistics.median(s) * 1000 / kb for name, s in samples.items()}
        table.add_row(
            label,
            f"{kb:,.0f}",
            f"{findings:,}",
            *(f"{ms[name]:.4f}" for name in CALLS),
            f"{ms['redact_pii'] / ms['length() baseline']:,.0f}x",
        )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds per cell (default 3)")
    parser.add_argument(
        "--data-dir", type=Path, default=REPO / ".tmp" / "bench-pg", help="embedded server data directory"
    )
    args = parser.parse_args(argv)
    console = Console(emoji=False)  # ":b:" in a row label is text, not an emoji code
    host, port = embedded.serve(args.data_dir, stop_at_exit=True)
    dbname = fresh_database(host, port)
    try:
        with psycopg.connect(host=host, port=port, user=APP_LOGIN, dbname=dbname, autocommit=True) as conn:
            items = load_corpus()
            result = score(items, run_corpus(conn, items))
            corpus = Table(title=f"PII corpus: {len(items)} items, exact-span match")
            for col in ("kind", "expected", "found", "tp", "fp", "fn", "precision", "recall"):
                corpus.add_column(col, justify="left" if col == "kind" else "right")
            for k in KINDS:
                corpus.add_row(
                    k,
                    str(result.tp[k] + result.fn[k]),
                    str(result.tp[k] + result.fp[k]),
                    str(result.tp[k]),
                    str(result.fp[k]),
                    str(result.fn[k]),
                    f"{result.precision(k):.3f}",
                    f"{result.recall(k):.3f}",
                )
            console.print(corpus)
            for miss in result.misses:
                console.print(f"  {miss}", markup=False)
            console.print(cost_table(conn, args.rounds))
    finally:
        admin = {"host": host, "port": port, "user": "postgres", "dbname": "postgres"}
        with psycopg.connect(**admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
