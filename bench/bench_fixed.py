"""Fixed costs per call, before and after, side by side in one database: search and the run-state guard.

What a small farm's search and every reservation pay whatever the data: function layers, the
tenant context's verification, the state guard's trigger. Measured inside the server (loops in a
DO block, plans cached as an application's prepared statements would be), so that the client, the
socket and the scheduler of a shared machine add as little noise as possible:

1. Search: microseconds per call of ``farmops.search(q, 10, include_global)`` as the application
   role with a tenant context, on farms of 10, 100 and 1,000 rows, farm-only and merged with a
   small global base (scanned exactly), beside
   - "before": the same functions as of ``--before`` (the commit before this work), loaded into
     the schema ``bench_before`` of the same database (their calls to each other go to the
     copies, everything else is the installed farmops);
   - "exact": the bare exact scan of the same rows, ``ORDER BY cosine_distance(...) LIMIT k``, as
     the same role under RLS (merged with the global base's exact scan for the global scope).
2. The run-state guard: microseconds per run lifecycle (INSERT, then UPDATE to running, then to
   succeeded) on three copies of ``farmops.ai_runs``: with the guard as installed now, with the
   guard as of ``--before``, and without any trigger (the floor).

Variants are interleaved call by call; the median call is reported. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

BEFORE = "7b04389"  # main before the fixed-cost work of issue 11 (branch bench)
FARM_SIZES = (10, 100, 1000)
RUN_MOVES = re.compile(
    r"_attach_forward_only\(\s*'farmops\.ai_runs',\s*('(?:[^']|'')*'(?:\s*'(?:[^']|'')*')*),\s*('[^']*')"
)


@dataclass
class Fixed:
    """Results: search {(rows, scope): {variant: us}}, guard {variant: us}, notes."""

    search: dict
    guard: dict
    dim: int
    global_rows: int
    before: str | None
    calls: int


def load(
    conn: psycopg.Connection, dim: int, global_rows: int, rng: np.random.Generator
) -> dict[int, uuid.UUID]:
    """One farm per size with random unit vectors, and a global base; returns {rows: farm id}."""
    farms = {}
    for n in FARM_SIZES:
        farm = uuid.uuid4()
        farms[n] = farm
        conn.execute("INSERT INTO farmops.farms (id, name) VALUES (%s, %s)", [farm, f"fixed {n}"])
        conn.execute("INSERT INTO farmops.farm_members VALUES (%s, 'bench', 'viewer')", [farm])
        vecs = rng.standard_normal((n, dim)).astype(np.float32)
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY farmops.embeddings (farm_id, source_type, source_id, chunk_index, content, embedding,"
                " model) FROM STDIN WITH (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(["uuid", "text", "uuid", "int4", "text", "vector", "text"])
            for i, v in enumerate(vecs):
                copy.write_row([farm, "memory", farm, i, f"chunk {i}", v, "bench"])
    doc = uuid.uuid4()
    conn.execute(
        "INSERT INTO farmops.global_documents (id, title, content, content_hash, model) "
        "VALUES (%s, 'global', 'global', encode(sha256('global'), 'hex'), 'bench')",
        [doc],
    )
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY farmops.global_embeddings (document_id, chunk_index, content, embedding, model)"
            " FROM STDIN WITH (FORMAT BINARY)"
        ) as copy,
    ):
        copy.set_types(["uuid", "int4", "text", "vector", "text"])
        for i, v in enumerate(rng.standard_normal((global_rows, dim)).astype(np.float32)):
            copy.write_row([doc, i, f"global {i}", v, "bench"])
    conn.commit()
    return farms


# Variants interleaved call by call (rotating which goes first); each call timed on its own and the
# median taken, so a preemption by another job on a shared machine spoils one sample, not a round.
SEARCH_LOOP = """
DO $$
DECLARE
    q vector := %(q)s;
    f uuid := %(farm)s;
    g boolean := %(g)s;
    n integer := %(calls)s;
    vs text[] := %(variants)s;
    nv integer := cardinality(%(variants)s);
    samples float8[] := array_fill(0::float8, ARRAY[n * nv]);
    x integer;
    j integer;
    v text;
    t timestamptz;
    out jsonb := '{}';
BEGIN
    FOR i IN 1 .. n LOOP
        FOR k IN 0 .. nv - 1 LOOP
            j := (i + k) %% nv + 1;
            v := vs[j];
            t := clock_timestamp();
            IF v = 'now' THEN
                SELECT count(*) INTO x FROM farmops.search(q, 10, g);
            ELSIF v = 'before' THEN
                SELECT count(*) INTO x FROM bench_before.search(q, 10, g);
            ELSIF NOT g THEN
                SELECT count(*) INTO x FROM (
                    SELECT e.id, cosine_distance(e.embedding, q) AS d FROM farmops.embeddings AS e
                    WHERE e.farm_id = f ORDER BY d LIMIT 10) AS s;
            ELSE
                SELECT count(*) INTO x FROM (
                    (SELECT e.id, cosine_distance(e.embedding, q) AS d FROM farmops.embeddings AS e
                     WHERE e.farm_id = f ORDER BY d LIMIT 10)
                    UNION ALL
                    (SELECT ge.id, cosine_distance(ge.embedding, q) AS d
                     FROM farmops.global_embeddings AS ge ORDER BY d LIMIT 10)
                    ORDER BY d LIMIT 10) AS s;
            END IF;
            samples[(j - 1) * n + i] := extract(EPOCH FROM clock_timestamp() - t) * 1e6;
        END LOOP;
    END LOOP;
    FOR j IN 1 .. nv LOOP
        out := out || jsonb_build_object(vs[j], (
            SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY u.x)
            FROM unnest(samples[(j - 1) * n + 1 : j * n]) AS u (x)
        ));
    END LOOP;
    RAISE NOTICE 'bench %%', out;
END
$$
"""

GUARD_LOOP = """
DO $$
DECLARE
    n integer := %(calls)s;
    vs text[] := %(variants)s;
    nv integer := cardinality(%(variants)s);
    samples float8[] := array_fill(0::float8, ARRAY[n * nv]);
    f uuid := gen_random_uuid();
    j integer;
    t timestamptz;
    out jsonb := '{}';
    v text;
    v_id uuid;
BEGIN
    FOR i IN 1 .. n LOOP
        FOR k IN 0 .. nv - 1 LOOP
            j := (i + k) %% nv + 1;
            v := vs[j];
            t := clock_timestamp();
            EXECUTE format('INSERT INTO %%I.ai_runs (farm_id, user_id, feature, model, '
                'credits_reserved, request_id, expires_at) VALUES ($1, ''u'', ''bench'', ''m'', 1, $2, '
                'now() + interval ''1h'') RETURNING id', v) INTO v_id USING f, gen_random_uuid()::text;
            EXECUTE format('UPDATE %%I.ai_runs SET status = ''running'' '
                'WHERE farm_id = $1 AND id = $2', v) USING f, v_id;
            EXECUTE format('UPDATE %%I.ai_runs SET status = ''succeeded'', credits_actual = 1, '
                'settled_at = now() WHERE farm_id = $1 AND id = $2', v) USING f, v_id;
            samples[(j - 1) * n + i] := extract(EPOCH FROM clock_timestamp() - t) * 1e6;
        END LOOP;
    END LOOP;
    FOR j IN 1 .. nv LOOP
        out := out || jsonb_build_object(vs[j], (
            SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY u.x)
            FROM unnest(samples[(j - 1) * n + 1 : j * n]) AS u (x)
        ));
    END LOOP;
    RAISE NOTICE 'bench %%', out;
END
$$
"""


def loop(conn: psycopg.Connection, statement: str, params: dict, variants: list[str]) -> dict[str, float]:
    """Run one DO loop; the median microseconds of a call per variant."""
    found: list[str] = []
    conn.add_notice_handler(lambda d: found.append(d.message_primary or ""))
    literal = "ARRAY[" + ", ".join(f"'{v}'" for v in variants) + "]::text[]"
    statement = statement.replace("%(variants)s", literal)
    conn.execute(psycopg.ClientCursor(conn).mogrify(statement, params))
    return json.loads(next(m for m in found if m.startswith("bench ")).removeprefix("bench "))


def guard_tables(conn: psycopg.Connection, before: str | None) -> list[str]:
    """Copies of farmops.ai_runs: bench_after (the guard as installed), bench_none (no trigger),
    bench_before (the guard of ``before``, if its sources loaded). Returns the schemas."""
    runs_sql = (common.REPO / "sql/functions/20_credits/runs.sql").read_text()
    moves, immutable = RUN_MOVES.search(runs_sql).groups()
    moves = "".join(re.findall(r"'((?:[^']|'')*)'", moves))
    immutable = immutable.strip("'")
    schemas = ["bench_after", "bench_none"] + (["bench_before"] if before else [])
    for schema in schemas:
        if schema != "bench_before":
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.ai_runs (LIKE farmops.ai_runs INCLUDING ALL)")
    conn.execute("SELECT farmops._attach_forward_only('bench_after.ai_runs', %s, %s)", [moves, immutable])
    if before:
        conn.execute(
            "SELECT bench_before._attach_forward_only('bench_before.ai_runs', %s, %s)", [moves, immutable]
        )
    conn.commit()
    return schemas


def run(host: str, port: int, *, dim: int, global_rows: int, calls: int, before: str | None) -> Fixed:
    """Measure both fixed costs in a fresh database; drop it afterwards."""
    dbname = common.fresh_database(
        host, port, "farmops_bench_fixed", {"farmops.embedding_dimension": str(dim)}
    )
    try:
        with psycopg.connect(common.dsn(host, port, "postgres", dbname)) as admin:
            register_vector(admin)
            rng = np.random.default_rng(7)
            farms = load(admin, dim, global_rows, rng)
            sources = (
                [
                    common.git_show(before, f"sql/functions/{p}")
                    for p in ("10_tenancy/capabilities.sql", "40_knowledge/search.sql", "00_core/guards.sql")
                ]
                if before
                else []
            )
            if before and all(sources):
                common.load_functions_into(admin, "bench_before", sources)
            else:
                before = None
            admin.commit()
            schemas = guard_tables(admin, before)
            admin.autocommit = True
            admin.execute("VACUUM ANALYZE")
            guard = loop(admin, GUARD_LOOP, {"calls": calls}, schemas)
        variants = ["exact", "now"] + (["before"] if before else [])
        search: dict = {}
        with psycopg.connect(common.dsn(host, port, common.APP_LOGIN, dbname)) as app:
            register_vector(app)
            # The exact scan planned once, generically, as search() plans its statements: left to
            # plan_cache_mode=auto, a tiny farm's statement is re-planned on every call (its custom
            # plan looks cheaper than the generic one), which would charge planning to the baseline.
            app.execute("SET plan_cache_mode = force_generic_plan")
            q = rng.standard_normal(dim).astype(np.float32)
            for n, farm in farms.items():
                for g in (False, True):
                    with app.transaction():
                        app.execute("SELECT farmops.begin_tenant(%s, 'bench')", [farm])
                        search[(n, g)] = loop(
                            app, SEARCH_LOOP,
                            {"q": q, "farm": farm, "g": g, "calls": calls}, variants,
                        )  # fmt: skip
                    common.log(f"fixed: search {n} rows {'farm+global' if g else 'farm'}: {search[(n, g)]}")
        return Fixed(search, guard, dim, global_rows, before, calls)
    finally:
        common.drop_database(host, port, dbname)


def render(r: Fixed) -> list[str]:
    """The two tables of fixed costs."""
    lines = [
        f"Search, microseconds per call inside the server (median of {r.calls} calls per variant, "
        f"interleaved call by call; {r.dim}-d, k 10, global base {r.global_rows:,} rows scanned exactly; "
        f"before = {r.before or 'not available'})"
    ]
    rows = []
    for (n, g), us in r.search.items():
        row = [f"{n:,} rows", "farm+global" if g else "farm", f"{us['exact']:.0f}", f"{us['now']:.0f}"]
        row += [f"{us['now'] - us['exact']:.0f}", f"{us['now'] / us['exact']:.2f}x"]
        if "before" in us:
            row += [
                f"{us['before']:.0f}",
                f"{us['before'] - us['exact']:.0f}",
                f"{us['before'] / us['exact']:.2f}x",
            ]
            row += [f"{us['now'] / us['before']:.2f}x"]
        rows.append(row)
    header = ["farm", "scope", "exact", "search", "fixed", "/exact"]
    if r.before:
        header += ["before", "fixed", "/exact", "now/before"]
    lines += common.table(header, rows)
    g = r.guard
    lines += [
        "",
        f"Run-state guard, microseconds per run lifecycle (INSERT, UPDATE to running, UPDATE to succeeded; "
        f"median of {r.calls}, interleaved):",
        f"  no trigger {g['bench_none']:.0f}, guard now {g['bench_after']:.0f} "
        f"(+{g['bench_after'] - g['bench_none']:.0f})"
        + (
            f", guard before {g['bench_before']:.0f} (+{g['bench_before'] - g['bench_none']:.0f})"
            if "bench_before" in g
            else ""
        ),
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run standalone: print the tables and write bench/results/fixed.txt."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--global-rows", type=int, default=2000)
    ap.add_argument("--calls", type=int, default=2000, help="calls per variant")
    ap.add_argument("--before", default=BEFORE, help="git revision of the 'before' functions ('' = none)")
    args = ap.parse_args(argv)
    host, port = common.serve()
    r = run(host, port, dim=args.dim, global_rows=args.global_rows, calls=args.calls,
            before=args.before or None)  # fmt: skip
    text = "\n".join([*common.machine(host, port), "", *render(r)])
    print(text)
    common.write_result("fixed.txt", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
