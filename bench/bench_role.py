"""What a transaction-local role costs: the client with ``connect(role="farmops_app")`` (SET LOCAL ROLE
in every transaction, as the CLI runs) beside the same client without a role (an application login).

Starts its own embedded PostgreSQL (data in ``.tmp/bench-pg``), migrates a fresh database and
measures, alternating the two clients in one process: round trips on the wire (a relay counts each
client->server turn) and milliseconds, median and p95, of (1) a tenant session reading the farm's
members and ledger, (2) a governed run ``t.ask()`` with FakeBedrock (a text answer). Prints a table
and writes it to ``bench/results/role.txt``. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_reserve import TurnCounter, drop_database, machine  # noqa: E402

import farmops_client  # noqa: E402
from farmops_client import embedded  # noqa: E402
from farmops_client import migrate as migrations  # noqa: E402
from farmops_client.embeddings import LexicalEmbedder  # noqa: E402
from farmops_client.tenancy import create_app_login  # noqa: E402
from farmops_client.testing import FakeBedrock, fake_bedrock_client  # noqa: E402

APP_LOGIN = "farmops_bench_app"
RESULTS = REPO / "bench" / "results" / "role.txt"


def fresh(host: str, port: int) -> str:
    dbname = f"farmops_role_{int(time.time())}"
    with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    with psycopg.connect(host=host, port=port, user="postgres", dbname=dbname) as conn:
        migrations.migrate(conn)
        create_app_login(conn, APP_LOGIN)
        conn.commit()
    return dbname


def measure(client, farm, work, n: int, relay: TurnCounter) -> tuple[list[int], list[float]]:
    turns, millis = [], []
    for _ in range(n):
        relay.reset()
        started = time.perf_counter()
        with client.tenant(farm, "owner") as t:
            work(t)
        millis.append((time.perf_counter() - started) * 1000)
        turns.append(relay.reset())
    return turns, millis


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60, help="operations per client and kind (default 60)")
    parser.add_argument("--data-dir", type=Path, default=REPO / ".tmp" / "bench-pg")
    args = parser.parse_args(argv)
    host, port = embedded.serve(args.data_dir, stop_at_exit=True)
    dbname = fresh(host, port)
    relay = TurnCounter(host, port)
    try:
        bedrock = fake_bedrock_client(FakeBedrock(default=FakeBedrock.text("noted.")))
        common = dict(bedrock=bedrock, embedder=LexicalEmbedder(), min_size=1, max_size=1)
        plain = farmops_client.connect(
            f"postgresql://{APP_LOGIN}@/{dbname}?host={relay.dir}&port={port}", **common
        )
        roled = farmops_client.connect(
            f"postgresql://postgres@/{dbname}?host={relay.dir}&port={port}", role="farmops_app", **common
        )
        farm = plain.create_farm("bench", "owner")
        with plain.tenant(farm, "owner") as t:
            t.grant_credits(1_000_000, "bench")
        kinds = {
            "tenant session: members + ledger": lambda t: (t.members(), t.ledger(limit=10)),
            "governed run t.ask() (text answer)": lambda t: t.ask("When is gumboro due?", max_tokens=64),
        }
        rows = []
        for name, work in kinds.items():
            results = {"no role (app login)": ([], []), "SET LOCAL ROLE (CLI)": ([], [])}
            for _ in range(args.runs // 10):  # alternating slices of 10
                for label, client in (("no role (app login)", plain), ("SET LOCAL ROLE (CLI)", roled)):
                    turns, millis = measure(client, farm, work, 10, relay)
                    results[label][0].extend(turns)
                    results[label][1].extend(millis)
            base = statistics.median(results["no role (app login)"][1])
            for label, (turns, millis) in results.items():
                p95 = statistics.quantiles(millis, n=20)[-1]
                med = statistics.median(millis)
                turn = statistics.median(turns)
                rows.append(f"{name:36} {label:22} {turn:5.0f} {med:8.2f} {p95:8.2f} {med / base:6.2f}x")
        plain.close()
        roled.close()
        header = f"{'operation':36} {'client':22} {'turns':>5} {'p50 ms':>8} {'p95 ms':>8} {'ratio':>7}"
        text = "\n".join(
            [
                *machine(host, port, dbname),
                f"{args.runs} operations per client and kind, alternating slices of 10, one pooled conn.",
                header,
                *rows,
                "turns = client->server round trips counted on the wire (median), including the pool's reset",
            ]
        )
        print(text)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text + "\n")
        return 0
    finally:
        drop_database(host, port, dbname)


if __name__ == "__main__":
    sys.exit(main())
