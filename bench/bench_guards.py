"""Cost of farmops.check_text per KB of text, and its detection / false-positive rates.

Starts its own embedded PostgreSQL (data in ``.tmp/bench-pg``), migrates a fresh database and,
as the application role in one session, measures side by side:

- ``check_text``: normalisation (NFKC, invisibles, homoglyphs, leetspeak, base64/hex decoding)
  plus every shipped rule for the stage;
- ``normalize_untrusted_text`` alone;
- baseline: one ``regexp_like`` of a single rule-sized pattern over the raw text.

Inputs: a short chat message, a 4 kB retrieved chunk, 100 kB and 1 MB of farm prose, and
adversarial text (one 1 MB base64-looking run, 1 MB of short base64-looking runs, 1 MB of
spaced-out letters). Prints a table and the corpus rates; asserts nothing about time.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from pathlib import Path

import psycopg
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_reserve import APP_LOGIN, drop_database, fresh_database  # noqa: E402

from farmops_client import embedded  # noqa: E402

PROSE = (
    "Record 3 dead birds in pen 2 this morning. We sold 40 crates of eggs to Mama Nkechi at 4,200 naira "
    "each. The vet said to give amprolium in the water for 5 days; abeg remind Musa. "
)
BASELINE = r"\m(ignore|disregard|forget)( [a-z]+){0,3} (previous|prior|above) (instructions|rules)\M"


def sized(text: str, n: int) -> str:
    return (text * (n // len(text) + 1))[:n]


def inputs() -> list[tuple[str, str]]:
    b64_run = base64.b64encode(os.urandom(750_000)).decode()[:1_000_000]
    short_runs = sized(base64.b64encode(os.urandom(18)).decode() + " ", 1_000_000)
    return [
        ("chat message (120 B)", PROSE[:120]),
        ("retrieved chunk (4 kB)", sized(PROSE, 4_000)),
        ("prose 100 kB", sized(PROSE, 100_000)),
        ("prose 1 MB", sized(PROSE, 1_000_000)),
        ("adversarial: one 1 MB base64 run", b64_run),
        ("adversarial: 1 MB of 24-char base64 runs", short_runs),
        ("adversarial: 1 MB spaced letters", sized("i g n o r e   a l l   ", 1_000_000)),
    ]


def per_call(conn: psycopg.Connection, sql: str, params: list, min_seconds: float = 1.0) -> float:
    """Seconds per execution, repeated for at least ``min_seconds`` (after one warm-up call)."""
    conn.execute(sql, params).fetchall()
    n, start = 0, time.perf_counter()
    while True:
        conn.execute(sql, params).fetchall()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return elapsed / n


def corpus_rates(conn: psycopg.Connection) -> str:
    rows = [json.loads(line) for line in (REPO / "tests/trust/guard_corpus.jsonl").open(encoding="utf-8")]
    lines = []
    for name in (None, "tuned", "holdout", "holdout2", "holdout3", "holdout4"):
        part = [r for r in rows if name is None or r["set"] == name]
        missed = fps = 0
        for r in part:
            verdict = conn.execute(
                "SELECT verdict FROM farmops.check_text(%s, %s)", [r["text"], r["stage"]]
            ).fetchone()[0]
            missed += r["label"] == "attack" and verdict == "allow"
            fps += r["label"] == "benign" and verdict != "allow"
        attacks = sum(r["label"] == "attack" for r in part)
        lines.append(
            f"{name or 'all':9} {len(part):4} rows: detection {1 - missed / attacks:6.1%} of {attacks:3}, "
            f"false positives {fps / (len(part) - attacks):5.1%} of {len(part) - attacks} benign"
        )
    return "\n".join(lines)


def main() -> None:
    host, port = embedded.serve(REPO / ".tmp" / "bench-pg", stop_at_exit=True)
    dbname = fresh_database(host, port)
    try:
        with psycopg.connect(host=host, port=port, user=APP_LOGIN, dbname=dbname, autocommit=True) as conn:
            table = Table(title="farmops.check_text cost (application role, no tenant, stage input)")
            for col in (
                "input",
                "check_text",
                "per KB",
                "normalise only",
                "baseline regexp",
                "x baseline",
                "verdict",
            ):
                table.add_column(col, justify="right" if col != "input" else "left")
            for label, text in inputs():
                kb = len(text.encode()) / 1024
                seconds = 0.3 if kb > 50 else 1.0
                check = per_call(conn, "SELECT * FROM farmops.check_text(%s, 'input')", [text], seconds)
                norm = per_call(conn, "SELECT length(farmops.normalize_untrusted_text(%s))", [text], seconds)
                base = per_call(conn, "SELECT regexp_like(%s, %s, 'n')", [text, BASELINE], seconds)
                verdict = conn.execute(
                    "SELECT verdict FROM farmops.check_text(%s, 'input')", [text]
                ).fetchone()[0]
                table.add_row(
                    label,
                    f"{check * 1000:.2f} ms",
                    f"{check * 1000 / kb:.3f} ms",
                    f"{norm * 1000:.2f} ms",
                    f"{base * 1000:.3f} ms",
                    f"{check / base:.0f}x",
                    verdict,
                )
            Console(width=150).print(table)
            print(corpus_rates(conn))
    finally:
        drop_database(host, port, dbname)


if __name__ == "__main__":
    main()
