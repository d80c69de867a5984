"""Benchmark: per-farm top-k retrieval, the plain filtered HNSW query vs ``farmops.search``.

Run ``python bench/bench_search.py`` (or ``make bench``). It starts its own embedded
PostgreSQL + pgvector under ``.tmp/bench-pg``, installs farmops into a fresh database
with the embedding dimension chosen here (the ``farmops.embedding_dimension`` install
setting), and generates its data itself: seeded RNG, unit-norm vectors around shared
cluster centres, farms with Zipf-distributed sizes.

For each farm-size bucket it reports recall@k against exact ground truth (numpy, over
the farm's own rows), how many queries came back with fewer than min(k, farm rows)
results, and p50/p95 latency of

(a) the plain query: ``WHERE farm_id = $2 ORDER BY embedding <=> $1 LIMIT k``
    over the plain HNSW index with default settings (as the superuser, no RLS), and
(b) ``farmops.search(p_query, p_k)`` as an application role (RLS on, tenant context set).

Default: 100k rows x 256-d (fits a 2-core CI box in a few minutes). ``--scale``: 1M x 1024-d.
Latencies are wall-clock round trips over the Unix socket on whatever else the box is doing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from farmops_client import embedded  # noqa: E402
from farmops_client import migrate as migrations  # noqa: E402
from farmops_client.tenancy import create_app_login  # noqa: E402

BENCH_DB = "farmops_bench"
APP_LOGIN = "farmops_bench_app"
BUCKETS = [(10, 99, "10-99"), (100, 999, "100-999"), (1000, 9999, "1k-9.9k"), (10000, 10**9, ">=10k")]
console = Console(width=170)


@dataclass
class Result:
    """Per-bucket measurements of one method."""

    recalls: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    short: int = 0

    def p(self, q: float) -> float:
        """The q-quantile of the latencies in milliseconds."""
        xs = sorted(self.latencies_ms)
        return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", action="store_true", help="1M rows x 1024-d (a bigger box)")
    ap.add_argument("--rows", type=int, help="total embedding rows (default 100000; 1000000 with --scale)")
    ap.add_argument("--dim", type=int, help="embedding dimension (default 256; 1024 with --scale)")
    ap.add_argument("--farms", type=int, default=400, help="number of farms (Zipf sizes)")
    ap.add_argument("--zipf", type=float, default=1.2, help="Zipf exponent of farm sizes")
    ap.add_argument("--queries", type=int, default=40, help="queries per farm-size bucket")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--exact-max", type=int, help="farmops.exact_search_max_rows for this run")
    ap.add_argument("--pgdata", type=Path, default=REPO / ".tmp" / "bench-pg")
    args = ap.parse_args()
    args.rows = args.rows or (1_000_000 if args.scale else 100_000)
    args.dim = args.dim or (1024 if args.scale else 256)
    return args


def farm_sizes(total: int, farms: int, s: float) -> list[int]:
    """Zipf-like sizes: a few large farms, hundreds of small ones (each at least 10 rows)."""
    w = np.array([1.0 / (i**s) for i in range(1, farms + 1)])
    sizes = np.maximum(10, np.floor(total * w / w.sum())).astype(int)
    sizes[0] += total - int(sizes.sum())  # exact total; the largest farm absorbs rounding
    return [int(x) for x in sizes]


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit norm."""
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def dsn(host: str, port: int, user: str, db: str) -> str:
    """A libpq URI over the Unix socket."""
    return f"postgresql://{user}@/{db}?host={host}&port={port}"


def install(host: str, port: int, dim: int) -> None:
    """Fresh database, farmops installed with the benchmark's dimension, an app login role."""
    with psycopg.connect(dsn(host, port, "postgres", "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(BENCH_DB)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DB)))
    with psycopg.connect(dsn(host, port, "postgres", BENCH_DB), autocommit=True) as conn:
        conn.execute(sql.SQL("SET farmops.embedding_dimension = {}").format(sql.Literal(str(dim))))
        migrations.migrate(conn)
        create_app_login(conn, APP_LOGIN)


def load(conn: psycopg.Connection, farm_ids: list[uuid.UUID], sizes: list[int], vecs: np.ndarray) -> float:
    """Bulk-load farms and rows (HNSW built after the COPY, as a DBA would); returns build seconds."""
    conn.execute("INSERT INTO farmops.farms (id, name) SELECT unnest(%s::uuid[]), 'bench'", [farm_ids])
    conn.execute(
        "INSERT INTO farmops.farm_members (farm_id, user_id, role) "
        "SELECT unnest(%s::uuid[]), 'bench', 'viewer'",
        [farm_ids],
    )
    indexdef = conn.execute(
        "SELECT pg_get_indexdef('farmops.embeddings_embedding_hnsw_idx'::regclass)"
    ).fetchone()[0]
    conn.execute("DROP INDEX farmops.embeddings_embedding_hnsw_idx")
    source = uuid.uuid4()
    with conn.cursor() as cur:
        copy_sql = (
            "COPY farmops.embeddings (farm_id, source_type, source_id, chunk_index, content, embedding,"
            " model) FROM STDIN WITH (FORMAT BINARY)"
        )
        with cur.copy(copy_sql) as copy:
            copy.set_types(["uuid", "text", "uuid", "int4", "text", "vector", "text"])
            row = 0
            for farm_id, n in zip(farm_ids, sizes, strict=True):
                for _ in range(n):
                    copy.write_row([farm_id, "memory", source, row, f"chunk {row}", vecs[row], "bench"])
                    row += 1
    conn.commit()
    conn.execute("SET maintenance_work_mem = '2GB'")
    t0 = time.perf_counter()
    conn.execute(indexdef)
    conn.commit()
    build = time.perf_counter() - t0
    conn.autocommit = True
    conn.execute("VACUUM ANALYZE farmops.embeddings")
    conn.autocommit = False
    return build


def main() -> int:
    """Build the data set, run both methods per bucket, print one table."""
    args = parse_args()
    rng = np.random.default_rng(args.seed)
    t_start = time.perf_counter()
    host, port = embedded.serve(args.pgdata, stop_at_exit=True)
    install(host, port, args.dim)

    sizes = farm_sizes(args.rows, args.farms, args.zipf)
    farm_ids = [uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | i) for i in range(len(sizes))]
    n_clusters = 64
    centres = unit(rng.standard_normal((n_clusters, args.dim)).astype(np.float32))
    spread = 0.9  # noise norm relative to the unit centre: clusters overlap, neighbours are not trivial
    labels = rng.integers(0, n_clusters, size=sum(sizes))
    vecs = np.empty((sum(sizes), args.dim), dtype=np.float32)
    for start in range(0, len(vecs), 50_000):
        stop = min(len(vecs), start + 50_000)
        noise = rng.standard_normal((stop - start, args.dim)).astype(np.float32) * (
            spread / np.sqrt(args.dim)
        )
        vecs[start:stop] = unit(centres[labels[start:stop]] + noise)
    offsets = np.concatenate([[0], np.cumsum(sizes)])

    admin = psycopg.connect(dsn(host, port, "postgres", BENCH_DB))
    register_vector(admin)
    console.print(f"loading {len(vecs):,} rows x {args.dim}-d into {len(sizes)} farms ...")
    build_s = load(admin, farm_ids, sizes, vecs)
    versions = admin.execute(
        "SELECT current_setting('server_version'), extversion FROM pg_extension WHERE extname = 'vector'"
    ).fetchone()
    admin.commit()
    admin.autocommit = True

    app = psycopg.connect(dsn(host, port, APP_LOGIN, BENCH_DB))
    register_vector(app)
    if args.exact_max is not None:
        app.execute("SELECT set_config('farmops.exact_search_max_rows', %s, false)", [str(args.exact_max)])
        app.commit()
    exact_max = app.execute("SELECT farmops.exact_search_max_rows()").fetchone()[0]
    app.commit()

    plain_sql = "SELECT id FROM farmops.embeddings WHERE farm_id = %s ORDER BY embedding <=> %s LIMIT %s"
    search_sql = "SELECT id FROM farmops.search(p_query => %s, p_k => %s)"

    def run_plain(farm, q):
        t0 = time.perf_counter()
        rows = admin.execute(plain_sql, [farm, q, args.k], prepare=False).fetchall()
        return rows, time.perf_counter() - t0

    def run_search(farm, q):
        with app.transaction():
            app.execute("SELECT farmops.begin_tenant(%s, 'bench')", [farm])
            t0 = time.perf_counter()
            rows = app.execute(search_sql, [q, args.k]).fetchall()
            elapsed = time.perf_counter() - t0
        return rows, elapsed

    # Ground-truth ids: the bench knows which row index each uuid is by asking once per farm.
    table = Table(
        title=(
            f"top-{args.k} per farm: {len(vecs):,} rows x {args.dim}-d, {len(sizes)} farms "
            f"(Zipf {args.zipf}), "
            f"{args.queries} queries/bucket; PostgreSQL {versions[0]}, pgvector {versions[1]}; "
            f"HNSW m=16 ef_construction=64 built in {build_s:.0f}s; exact_search_max_rows={exact_max}"
        )
    )
    for col in (
        "farm rows",
        "farms",
        "recall@k plain",
        "recall@k farmops",
        "short plain",
        "short farmops",
        "p50/p95 ms plain",
        "p50/p95 ms farmops",
    ):
        table.add_column(col, justify="right")

    for lo, hi, label in BUCKETS:
        members = [i for i, n in enumerate(sizes) if lo <= n <= hi]
        if not members:
            continue
        plain_res, ours_res = Result(), Result()
        for qi in range(args.queries + 3):  # three warm-up queries per bucket, not counted
            f = members[qi % len(members)]
            farm = farm_ids[f]
            q = unit(
                centres[rng.integers(0, n_clusters)]
                + rng.standard_normal(args.dim) * (spread / np.sqrt(args.dim))
            )
            q = q.astype(np.float32)
            rows = vecs[offsets[f] : offsets[f + 1]]
            want_n = min(args.k, len(rows))
            truth_idx = set((np.argsort(-(rows @ q), kind="stable")[:want_n] + offsets[f]).tolist())
            ids = admin.execute(
                "SELECT id, chunk_index FROM farmops.embeddings WHERE farm_id = %s", [farm]
            ).fetchall()
            id_to_row = {i: c for i, c in ids}
            for res, fn in ((plain_res, run_plain), (ours_res, run_search)):
                got, elapsed = fn(farm, q)
                if qi < 3:
                    continue
                got_rows = {id_to_row.get(r[0], -1) for r in got}
                res.recalls.append(len(got_rows & truth_idx) / want_n)
                res.latencies_ms.append(elapsed * 1000)
                res.short += len(got) < want_n
        table.add_row(
            label,
            str(len(members)),
            f"{statistics.mean(plain_res.recalls):.3f}",
            f"{statistics.mean(ours_res.recalls):.3f}",
            f"{plain_res.short}/{args.queries}",
            f"{ours_res.short}/{args.queries}",
            f"{plain_res.p(0.5):.1f} / {plain_res.p(0.95):.1f}",
            f"{ours_res.p(0.5):.1f} / {ours_res.p(0.95):.1f}",
        )
    console.print(table)
    console.print(
        "plain = WHERE farm_id = $2 ORDER BY embedding <=> $1 LIMIT k, default HNSW settings, superuser; "
        "farmops = farmops.search(p_query, p_k) as an app role under RLS (global knowledge base empty). "
        "'short' = queries answered with fewer than min(k, farm rows) rows. "
        f"Total {time.perf_counter() - t_start:.0f}s."
    )
    admin.close()
    app.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
