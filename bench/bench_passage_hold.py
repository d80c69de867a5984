"""A text answer with retrieved passages and no fixed input bound: round trips and holds, before
(main's client) and after (this tree's), side by side against one server.

    .venv/bin/python bench/bench_passage_hold.py   # results in bench/results/passage_hold.txt

The grow of the hold for the passages rides in the retrieval's statement (``core.SEARCH_AND_GROW``)
instead of an ``extend_reservation`` round trip after a CountTokens. It grows by a guess (the
skeleton's count per byte) that must not hold more than the count asks. Scenarios, FakeBedrock,
the Titan-shaped fake embedder, four passages of about 1,100 characters each:
1. one warm ask after another (``ASKS``): round trips counted on the wire (``tests/support/wire``),
   the hold when the model is called and the credits charged, medians; the same on a model that
   cannot count tokens (every bound by the byte rule);
2. a farm with the credits of ``CONCURRENT`` of main's holds, that many concurrent asks on a model
   that takes :data:`MODEL_SECONDS`: how many were refused.
``FARMOPS_BENCH_BASELINE`` names the baseline ref (main when this was written: 4f964e6).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASELINE = os.environ.get("FARMOPS_BENCH_BASELINE", "4f964e6")
sys.path.insert(0, str(REPO / "tests"))
ASKS = 7
CONCURRENT = 10
#: How long the model takes in the concurrent scenario (so that every hold is held at once).
MODEL_SECONDS = 1.0
PROMPT = "When do I vaccinate broilers against Newcastle disease?"
PASSAGE = (
    "Vaccinate broilers against Newcastle disease on day {n} and again two weeks later. Give the "
    "vaccine in the drinking water in the early morning, after two hours without water, so that every "
    "bird drinks within two hours; add skimmed milk powder to the water first to protect the live "
    "virus from chlorine. Clean the drinkers without disinfectant the day before, and keep the "
    "vaccine cold until it is mixed. "
) * 3


def scenario(host: str, port: int, dbname: str, user: str, hold_each: int | None) -> dict:
    from support import concurrently
    from support.wire import TurnCounter

    import farmops_client
    from farmops_client.embeddings import TitanEmbedder
    from farmops_client.testing import FakeBedrock, fake_bedrock_client

    fake = FakeBedrock(default=FakeBedrock.text("On day 7 and 21.", input_tokens=1500, output_tokens=20))
    bedrock = fake_bedrock_client(fake)
    relay = TurnCounter(host, port)
    client = farmops_client.connect(
        relay.dsn(dbname, user), bedrock=bedrock, embedder=TitanEmbedder(bedrock), min_size=1, max_size=4
    )
    farm = client.create_farm("Passages", "alice")
    with client.tenant(farm, "alice") as t:
        t.grant_credits(100_000, "plenty")
        for n in range(4):
            t.ingest_document(f"Vaccination {n}", PASSAGE.format(n=7 + n), max_chars=2000)
    turns, holds, charged, passages = [], [], [], []
    for _ in range(ASKS + 1):  # the first one warms the pool and the client's caches
        with client.tenant(farm, "alice") as t:
            relay.reset()
            result = t.ask(PROMPT)
            turns.append(relay.reset())
        holds.append(result.credits_reserved)
        charged.append(result.credits_charged)
        passages.append(len(result.retrievals))
    # a model that cannot count (CountTokens refused): every bound by the byte rule
    blind = FakeBedrock(
        default=FakeBedrock.text("On day 7 and 21.", input_tokens=1500, output_tokens=20), count_tokens=False
    )
    blind_bedrock = fake_bedrock_client(blind)
    blind_client = farmops_client.connect(
        relay.dsn(dbname, user), bedrock=blind_bedrock, embedder=TitanEmbedder(blind_bedrock), max_size=1
    )
    blind_turns, blind_holds = [], []
    for _ in range(ASKS + 1):
        with blind_client.tenant(farm, "alice") as t:
            relay.reset()
            result = t.ask(PROMPT)
            blind_turns.append(relay.reset())
        blind_holds.append(result.credits_reserved)
    blind_client.close()
    budget = CONCURRENT * (hold_each if hold_each is not None else statistics.median(holds[1:]))
    tight = client.create_farm("Tight", "alice")
    with client.tenant(tight, "alice") as t:
        t.grant_credits(100_000, "for the documents")
        for n in range(4):
            t.ingest_document(f"Vaccination {n}", PASSAGE.format(n=7 + n), max_chars=2000)
        t.adjust_credits(int(budget) - t.balance(), "the budget")

    fake.delay = MODEL_SECONDS  # every ask inside the model at once: their holds add up

    def ask():
        with client.tenant(tight, "alice") as t:
            return t.ask(PROMPT)

    results = concurrently([ask] * CONCURRENT)
    refused = sum(1 for r in results if isinstance(r, farmops_client.FarmopsError))
    client.close()
    relay.close()
    return {
        "turns": statistics.median(turns[1:]),
        "hold": statistics.median(holds[1:]),
        "charged": statistics.median(charged[1:]),
        "passages": statistics.median(passages[1:]),
        "blind_turns": statistics.median(blind_turns[1:]),
        "blind_hold": statistics.median(blind_holds[1:]),
        "budget": int(budget),
        "refused": refused,
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        host, port, dbname, user = sys.argv[2:6]
        print(json.dumps(scenario(host, int(port), dbname, user, None)))
        return
    import psycopg
    from support.server import APP_LOGIN, PG_HOST, PG_PORT, load_farmops, server_dsn

    name = f"bench_ph_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        load_farmops(PG_HOST, PG_PORT, "postgres", name)
        old = REPO / ".tmp" / "bench-main-client"
        subprocess.run(
            f"rm -rf {old} && mkdir -p {old} && git archive {BASELINE} farmops_client | tar -x -C {old}",
            shell=True,
            check=True,
            cwd=REPO,
        )
        env = {**os.environ, "PYTHONPATH": f"{old}{os.pathsep}{REPO / 'tests'}"}
        args = [sys.executable, __file__, "--child", PG_HOST, str(PG_PORT), name, APP_LOGIN]
        child = subprocess.run(args, env=env, check=True, capture_output=True, text=True, cwd=old)
        before = json.loads(child.stdout.splitlines()[-1])
        after = scenario(PG_HOST, PG_PORT, name, APP_LOGIN, before["hold"])
    finally:
        with psycopg.connect(server_dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    rows = [
        ("passages retrieved (median)", "passages"),
        ("round trips of a warm ask (median)", "turns"),
        ("credits held when the model is called", "hold"),
        ("credits charged", "charged"),
        ("a model that cannot count: round trips", "blind_turns"),
        ("  credits held when the model is called", "blind_hold"),
        (f"budget: {CONCURRENT} x main's hold", "budget"),
        (f"  {CONCURRENT} concurrent asks refused", "refused"),
    ]
    lines = [f"{'scenario':<44}{'before (' + BASELINE + ')':>18}{'after (this tree)':>20}"]
    lines += [f"{label:<44}{before[key]:>18}{after[key]:>20}" for label, key in rows]
    text = "\n".join(lines)
    print(text)
    (REPO / "bench" / "results" / "passage_hold.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
