"""Scoring of farmops.redact_pii against the labelled corpus (shared by the test and the benchmark).

A finding counts as a true positive only on an exact match of kind, start and length.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

CORPUS = Path(__file__).with_name("pii_corpus.jsonl")
KINDS = ("email", "phone", "payment_card", "iban", "ip_address", "national_id", "secret")


def load_corpus() -> list[dict]:
    """The corpus items: ``{"id", "text", "findings"}``."""
    with CORPUS.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@dataclass
class Score:
    """Per-kind counts plus the mismatches (for a readable failure message)."""

    tp: Counter = field(default_factory=Counter)
    fp: Counter = field(default_factory=Counter)
    fn: Counter = field(default_factory=Counter)
    misses: list[str] = field(default_factory=list)

    def precision(self, kind: str) -> float:
        found = self.tp[kind] + self.fp[kind]
        return self.tp[kind] / found if found else 1.0

    def recall(self, kind: str) -> float:
        expected = self.tp[kind] + self.fn[kind]
        return self.tp[kind] / expected if expected else 1.0

    def table(self) -> str:
        head = ("kind", "expected", "found", "tp", "fp", "fn", "precision", "recall")
        lines = ["{:<14}{:>9}{:>7}{:>5}{:>4}{:>4}{:>11}{:>8}".format(*head)]
        for k in KINDS:
            tp, fp, fn = self.tp[k], self.fp[k], self.fn[k]
            row = (k, tp + fn, tp + fp, tp, fp, fn, f"{self.precision(k):.3f}", f"{self.recall(k):.3f}")
            lines.append("{:<14}{:>9}{:>7}{:>5}{:>4}{:>4}{:>11}{:>8}".format(*row))
        return "\n".join(lines)


def run_corpus(conn: psycopg.Connection, items: list[dict]) -> list[list[dict]]:
    """farmops.redact_pii's findings for every item, in one round trip."""
    rows = conn.execute(
        """SELECT (farmops.redact_pii(t.text)).findings
           FROM unnest(%s::text[]) WITH ORDINALITY AS t (text, ord) ORDER BY t.ord""",
        [[it["text"] for it in items]],
    ).fetchall()
    return [r[0] for r in rows]


def score(items: list[dict], results: list[list[dict]]) -> Score:
    """Exact-span comparison of expected and found findings, per kind."""
    s = Score()
    for it, found in zip(items, results, strict=True):
        want = {(f["kind"], f["start"], f["length"]) for f in it["findings"]}
        got = {(f["kind"], f["start"], f["length"]) for f in found}
        for kind, _, _ in got & want:
            s.tp[kind] += 1
        for label, wrong, counter in (("FP", got - want, s.fp), ("FN", want - got, s.fn)):
            for kind, start, length in sorted(wrong):
                counter[kind] += 1
                value = it["text"][start : start + length]
                s.misses.append(f"{label} {kind} {value!r} in item {it['id']}: {it['text']!r}")
    return s
