"""What screening a streamed answer costs: ``ask_stream`` with its screened segments, side by side
with the same stream screened only at the end, in one process.

    .venv/bin/python bench/bench_stream_guard.py   # results in bench/results/stream_guard.txt

Starts its own embedded PostgreSQL (``.tmp/bench-pg``), migrates a fresh database and, as the
application role through the library client (FakeBedrock answering at once, word-sized deltas):

1. ``farmops.screen_stream_text`` alone on answers of 500 to 4,000 characters (with two PII
   findings): ms per call (one round trip: the tenant context and the call pipelined), and per KB;
   beside ``screen_output`` (the final screen, which also counts the findings), ``check_text``
   alone and the tenant context alone (the same round trip);
2. one ``ask_stream`` of a 2,000-character answer at ``segment_chars`` 100, 200 (the default) and
   400, against ``segment_chars=10**6`` (no segment is due: only the final screen, the floor that a
   stream cannot go under): wall ms per run, screens per answer, and the difference per screen.

Median of ``--rounds`` alternating slices; prints ratios, asserts nothing about time.
"""

from __future__ import annotations

import argparse
import statistics
import time

import common

from farmops_client.assistant import run as driver
from farmops_client.assistant.core import Call, Db, Statement

SENTENCE = "The birds in pen three ate {n} bags of grower mash this week and drank well. "
PII = " Call Musa on 0803 123 4567 or mail amina.bello@gmail.com about the invoice. "


def answer(chars: int) -> str:
    """A farm answer of about ``chars`` characters with two PII findings a third of the way in."""
    parts, n = [], 0
    while sum(map(len, parts)) < chars:
        parts.append(SENTENCE.format(n=n))
        n += 1
    parts.insert(len(parts) // 3, PII)
    return "".join(parts)[:chars].rsplit(" ", 1)[0] + "."


def slice_ms(fn, calls: int) -> float:
    """Mean ms per call over ``calls`` calls of ``fn``."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) * 1000 / calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args(argv)

    import farmops_client
    from farmops_client.embeddings import TitanEmbedder
    from farmops_client.testing import FakeBedrock, fake_bedrock_client

    host, port = common.serve()
    dbname = common.fresh_database(host, port, "farmops_bench_stream")
    lines = common.machine(host, port)
    try:
        text = answer(2000)
        fake = FakeBedrock(default=FakeBedrock.text(text, input_tokens=10, output_tokens=500))
        bedrock = fake_bedrock_client(fake)
        client = farmops_client.connect(
            common.dsn(host, port, common.APP_LOGIN, dbname),
            bedrock=bedrock,
            embedder=TitanEmbedder(bedrock),
            max_size=2,
        )
        farm = client.create_farm("Bench", "alice")
        with client.tenant(farm, "alice") as t:
            t.grant_credits(2_000_000_000, "bench")
            run_id = t.execute(
                "SELECT id FROM farmops.reserve_credits('bench', 'bench-model', 1, p_ttl => '1 day')"
            ).fetchone()["id"]
        with client.tenant(farm, "alice") as t:
            effects = driver._Effects(t)

            def screen(chars: int):
                step = Call("screen_stream_text", {"run_id": run_id, "text": answer(chars)})
                return lambda: effects.db(Db((step,)))

            per_call = {chars: screen(chars) for chars in (500, 1000, 2000, 4000)}
            final = Call("screen_output", {"run_id": run_id, "text": answer(2000)})
            per_call["screen_output, 2,000 chars"] = lambda: effects.db(Db((final,)))
            check = Call("check_text", {"text": answer(2000), "stage": "output"})
            per_call["check_text, 2,000 chars"] = lambda: effects.db(Db((check,)))
            per_call["the tenant context alone"] = lambda: effects.db(Db((Statement("SELECT 1", {}),)))

            def stream(segment: int):
                def go():
                    events = list(t.ask_stream("How are the birds?", k=0, segment_chars=segment))
                    go.screens = events[-1].result.screening["stream"]["screens"]

                go.screens = 0
                return go

            segments = {s: stream(s) for s in (10**6, 400, 200, 100)}
            calls = {chars: [] for chars in per_call}
            runs = {s: [] for s in segments}
            for _ in range(args.rounds):
                for chars, fn in per_call.items():
                    fn()
                    calls[chars].append(slice_ms(fn, args.calls))
                for s, fn in segments.items():
                    fn()
                    runs[s].append(slice_ms(fn, max(args.calls // 4, 1)))
        client.close()
        med_call = {c: statistics.median(v) for c, v in calls.items()}
        med_run = {s: statistics.median(v) for s, v in runs.items()}
        lines.append("")
        lines.append(
            f"1. farmops.screen_stream_text, one pipelined round trip (median of {args.rounds}x{args.calls})"
        )
        rows = [
            [f"{c:,} chars", f"{ms:.2f}", f"{ms * 1024 / c:.2f}"]
            if isinstance(c, int)
            else [c, f"{ms:.2f}", ""]
            for c, ms in med_call.items()
        ]
        lines += common.table(["answer so far", "ms/call", "ms/KB"], rows)
        lines.append("")
        lines.append(
            f"2. ask_stream of a {len(text):,}-character answer (FakeBedrock, word deltas; median of "
            f"{args.rounds} x {max(args.calls // 4, 1)} runs)"
        )
        floor = med_run[10**6]
        rows = []
        for s, ms in med_run.items():
            screens = segments[s].screens
            extra = "" if not screens else f"{(ms - floor) / screens:.2f}"
            label = "10**6 (final screen only)" if s == 10**6 else str(s)
            rows.append([label, str(screens), f"{ms:.1f}", f"{ms / floor:.2f}x", extra])
        lines += common.table(["segment_chars", "screens", "ms/run", "ratio", "ms/screen"], rows)
        lines.append(
            "ratio: against the same stream with no segment due (the answer released at the end, "
            "after screen_output)"
        )
        print("\n".join(lines))
        (common.RESULTS / "stream_guard.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    finally:
        common.drop_database(host, port, dbname)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
