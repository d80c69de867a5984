"""Right-sized reservations and connection use, before (main's client) and after (this tree's).

    .venv/bin/python bench/bench_rightsizing.py   # results in bench/results/rightsizing.txt

Issue 16's scenarios, against the test server (tests/support) in a fresh database:
1. a 40-credit farm, 10 concurrent ``ask("hi")`` (FakeBedrock: 10 tokens in, 5 out, 1 credit a run):
   how many were refused although the farm could pay every run that was asked;
2. 8 concurrent asks against a 1-second model on a pool of ``max_size=2``: wall time, and the asks
   in flight per pooled connection.
The baseline is the client before issue 16 (``git archive 7b04389``, the tree this branch started
from; ``FARMOPS_BENCH_BASELINE`` names another ref) run by this same script in a child process
against the same server; both print one line each, side by side.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: The client before right-sized reservations and per-step connections (issue 16).
BASELINE = os.environ.get("FARMOPS_BENCH_BASELINE", "7b04389")
sys.path.insert(0, str(REPO / "tests"))


def scenario(dsn: str) -> dict:
    from support import concurrently

    import farmops_client
    from farmops_client.embeddings import TitanEmbedder
    from farmops_client.testing import FakeBedrock, fake_bedrock_client

    fake = FakeBedrock(default=FakeBedrock.text("ok", input_tokens=10, output_tokens=5))
    bedrock = fake_bedrock_client(fake)
    client = farmops_client.connect(dsn, bedrock=bedrock, embedder=TitanEmbedder(bedrock), max_size=10)
    farm = client.create_farm("Forty", "alice")
    with client.tenant(farm, "alice") as t:
        t.grant_credits(40, "forty")

    def ask():
        with client.tenant(farm, "alice") as t:
            return t.ask("hi")

    results = concurrently([ask] * 10)
    refused = sum(1 for r in results if isinstance(r, farmops_client.FarmopsError))
    with client.tenant(farm, "alice") as t:
        balance = t.balance()
    client.close()

    inside = [0, 0]  # asks inside the model now, most at once
    lock = threading.Lock()

    def slow_turn(_body):  # a 1-second model (main's FakeBedrock has no delay option)
        with lock:
            inside[0] += 1
            inside[1] = max(inside[1], inside[0])
        time.sleep(1.0)
        with lock:
            inside[0] -= 1
        return FakeBedrock.text("ok")

    slow = FakeBedrock(default=slow_turn)
    bedrock = fake_bedrock_client(slow)
    client = farmops_client.connect(dsn, bedrock=bedrock, embedder=TitanEmbedder(bedrock), max_size=2)
    farm = client.create_farm("Busy", "alice")
    with client.tenant(farm, "alice") as t:
        t.grant_credits(10_000, "plenty")

    def slow_ask():
        with client.tenant(farm, "alice") as t:
            return t.ask("hi", k=1)

    started = time.monotonic()
    results = concurrently([slow_ask] * 8)
    elapsed = time.monotonic() - started
    client.close()
    ok = sum(1 for r in results if not isinstance(r, Exception))
    return {
        "refused": refused,
        "balance": balance,
        "slow_s": round(elapsed, 2),
        "slow_ok": ok,
        "most": inside[1],
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(scenario(sys.argv[2])))
        return
    import psycopg
    from support.server import APP_LOGIN, PG_HOST, PG_PORT, load_farmops, server_dsn

    name = f"bench_rs_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        load_farmops(PG_HOST, PG_PORT, "postgres", name)
        dsn = server_dsn(name, APP_LOGIN)
        old = REPO / ".tmp" / "bench-main-client"
        subprocess.run(
            f"rm -rf {old} && mkdir -p {old} && git archive {BASELINE} farmops_client | tar -x -C {old}",
            shell=True,
            check=True,
            cwd=REPO,
        )
        env = {**os.environ, "PYTHONPATH": f"{old}{os.pathsep}{REPO / 'tests'}"}
        before = json.loads(
            subprocess.run(
                [sys.executable, __file__, "--child", dsn],
                env=env,
                check=True,
                capture_output=True,
                text=True,
                cwd=old,
            ).stdout.splitlines()[-1]
        )
        after = scenario(dsn)
    finally:
        with psycopg.connect(server_dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    lines = [
        f"scenario                                   before ({BASELINE})   after (this tree)",
        f"40-credit farm, 10 concurrent asks refused  {before['refused']:>13}   {after['refused']:>20}",
        f"  balance after                             {before['balance']:>13}   {after['balance']:>20}",
        f"8 asks, 1 s model, pool max_size=2: wall s  {before['slow_s']:>13}   {after['slow_s']:>20}",
        f"  most asks inside the model at once         {before['most']:>13}   {after['most']:>20}",
        f"  asks in flight per pooled connection      {before['most'] / 2:>13.1f}   "
        f"{after['most'] / 2:>20.1f}",
    ]
    text = "\n".join(lines)
    print(text)
    (REPO / "bench" / "results" / "rightsizing.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
