"""farmops.search returns the exact top k at every farm size, near and off-topic, with and without
the global knowledge base (also when the global base goes through its HNSW index), never short,
never another farm's rows. Correctness only: speed is bench/bench_search.py's business."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from pgvector.psycopg import register_vector
from support import create_farm, tenant
from support.knowledge import DIM

TOPICS = 12
SIZES = (10, 100, 1000, 10_050)  # one farm per bucket; the last is above exact_search_max_rows()


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture
def corpus(app, admin):
    """Topic-mixture rows: each farm holds topics 0-3 only, so topics 4+ are off-topic for every
    farm; an extra farm holds every topic (the neighbour whose rows must never show up); the
    global base (300 rows) covers every topic. Loaded by COPY as the superuser (fast), read as
    the app role."""
    rng = np.random.default_rng(11)
    centres = _unit(0.4 * _unit(rng.standard_normal(DIM)) + _unit(rng.standard_normal((TOPICS, DIM))))

    def around(topics: np.ndarray) -> np.ndarray:
        return _unit(centres[topics] + rng.standard_normal((len(topics), DIM)).astype(np.float32) * 0.06)

    farms = {n: create_farm(app, f"farm of {n}", "alice") for n in SIZES}
    neighbour = create_farm(app, "neighbour", "bob")
    vectors = {n: around(rng.integers(0, 4, n)) for n in SIZES}
    vectors[neighbour] = around(rng.integers(0, TOPICS, 2000))
    global_vectors = around(rng.integers(0, TOPICS, 300))
    register_vector(admin)
    with admin.cursor() as cur:
        with cur.copy(
            "COPY farmops.embeddings (farm_id, source_type, source_id, chunk_index, content, embedding,"
            " model) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["uuid", "text", "uuid", "int4", "text", "vector", "text"])
            for key, vs in vectors.items():
                farm_id = farms.get(key, key)
                for i, v in enumerate(vs):
                    copy.write_row([farm_id, "memory", farm_id, i, f"{farm_id}:{i}", v, "m"])
        doc = uuid.uuid4()
        cur.execute(
            "INSERT INTO farmops.global_documents (id, title, content, content_hash, model)"
            " VALUES (%s, 'g', 'g', encode(sha256('g'), 'hex'), 'm')",
            [doc],
        )
        with cur.copy(
            "COPY farmops.global_embeddings (document_id, chunk_index, content, embedding, model)"
            " FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["uuid", "int4", "text", "vector", "text"])
            for i, v in enumerate(global_vectors):
                copy.write_row([doc, i, f"global:{i}", v, "m"])
    admin.commit()
    register_vector(app)
    return {
        "farms": farms,
        "neighbour": neighbour,
        "vectors": vectors,
        "global": global_vectors,
        "make": around,
    }


def _truth(own: np.ndarray, glob: np.ndarray | None, q: np.ndarray, k: int) -> list[tuple[bool, int]]:
    """Brute force: (is_global, chunk_index) of the k nearest by cosine, farm rows first on ties."""
    pairs = [(1.0 - float(d), False, i) for i, d in enumerate(own @ q)]
    if glob is not None:
        pairs += [(1.0 - float(d), True, i) for i, d in enumerate(glob @ q)]
    return [(g, i) for _, g, i in sorted(pairs)[:k]]


def _search(app, farm, q, k, include_global):
    with tenant(app, farm, "alice"):
        return app.execute(
            "SELECT is_global, chunk_index, score, content FROM farmops.search(p_query => %s, p_k => %s,"
            " p_include_global => %s)",
            [q, k, include_global],
        ).fetchall()


def _assert_top_k(rows, own, glob, q, k):
    """The rows are the brute-force top k, best first, each with its true score; where the k-th
    and (k+1)-th true distances differ by float rounding only, either of the tied rows will do."""
    want = _truth(own, glob, q, k + 1)
    pool = {(False, i): v for i, v in enumerate(own)}
    if glob is not None:
        pool |= {(True, i): v for i, v in enumerate(glob)}
    assert len(rows) == min(k, len(pool))  # never short
    got = [(g, i) for g, i, _, _ in rows]
    assert len(set(got)) == len(got)
    for (g, i), (_, _, score, _) in zip(got, rows, strict=True):
        assert score == pytest.approx(float(pool[(g, i)] @ q), abs=1e-5)
    scores = [r[2] for r in rows]
    assert scores == sorted(scores, reverse=True)
    dist = [1.0 - float(pool[w] @ q) for w in want]
    if len(want) <= k or dist[k] - dist[k - 1] > 1e-5:
        assert sorted(got) == sorted(want[:k])
    else:
        assert all(1.0 - s <= dist[k - 1] + 1e-5 for s in scores)


def test_exact_top_k_in_every_bucket_near_and_off_topic_with_and_without_global(app, corpus):
    rng = np.random.default_rng(5)
    for size in SIZES:
        farm = corpus["farms"][size]
        own = corpus["vectors"][size]
        for off_topic in (False, True):
            topics = rng.integers(4, TOPICS, 3) if off_topic else rng.integers(0, 4, 3)
            for q in corpus["make"](topics):
                for include_global in (False, True):
                    rows = _search(app, farm, q, 10, include_global)
                    _assert_top_k(rows, own, corpus["global"] if include_global else None, q, 10)
                    assert all(c.startswith((f"{farm}:", "global:")) for *_, c in rows)


def _hnsw_scans(conn) -> int:
    """Scans of the global base's HNSW index in this transaction so far."""
    return conn.execute(
        "SELECT pg_stat_get_xact_numscans('farmops.global_embeddings_embedding_hnsw_idx'::regclass)"
    ).fetchone()[0]


def test_the_global_base_on_its_hnsw_path_still_merges_exactly(app, corpus):
    """exact_search_max_rows lowered below the global base's 300 rows: its HNSW index answers
    (ef_search 200 reaches them all), and the merge is still the brute-force top k. At the
    default threshold the same search scans exactly and never touches the index."""
    rng = np.random.default_rng(3)
    farm = corpus["farms"][1000]
    own = corpus["vectors"][1000]
    for q in corpus["make"](rng.integers(0, TOPICS, 6)):
        with tenant(app, farm, "alice"):
            before = _hnsw_scans(app)
            app.execute(
                "SELECT is_global, chunk_index FROM farmops.search(p_query => %s, p_k => 10)", [q]
            ).fetchall()
            assert _hnsw_scans(app) == before
            app.execute("SELECT set_config('farmops.exact_search_max_rows', '50', true)")
            rows = app.execute(
                "SELECT is_global, chunk_index, score, content FROM farmops.search(p_query => %s, p_k => 10)",
                [q],
            ).fetchall()
            assert _hnsw_scans(app) == before + 1
        _assert_top_k(rows, own, corpus["global"], q, 10)


@pytest.mark.parametrize("k", [1, 999, 1000])
def test_never_short_and_ordered_for_any_k(app, corpus, k):
    farm = corpus["farms"][1000]
    q = corpus["make"](np.array([7]))[0]  # off-topic
    rows = _search(app, farm, q, k, False)
    assert len(rows) == k
    _assert_top_k(rows, corpus["vectors"][1000], None, q, k)
    rows = _search(app, corpus["farms"][10], q, k, True)
    assert len(rows) == min(k, 10 + 300)


def test_no_farm_sees_the_neighbours_rows_even_at_the_neighbours_own_vectors(app, corpus):
    """The neighbour farm holds every topic; querying with its exact vectors returns only the
    caller's own rows (and global rows), in every bucket."""
    neighbour_vectors = corpus["vectors"][corpus["neighbour"]]
    for size in SIZES:
        farm = corpus["farms"][size]
        for q in neighbour_vectors[:3]:
            rows = _search(app, farm, q, 50, False)
            assert rows and all(c.startswith(f"{farm}:") for *_, c in rows)
            # Merged with the global base (the other statement of search()): still no neighbour row.
            rows = _search(app, farm, q, 50, True)
            assert rows and all(g or c.startswith(f"{farm}:") for g, *_, c in rows)


def test_every_index_of_the_farm_embeddings_leads_with_farm_id(admin):
    """No index reaches across tenants: the all-farm HNSW graph is gone (migration 0065)."""
    rows = admin.execute(
        "SELECT c.relname, a.attname FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid "
        "LEFT JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
        "WHERE i.indrelid = 'farmops.embeddings'::regclass ORDER BY 1"
    ).fetchall()
    assert rows and all(att == "farm_id" for _, att in rows), rows
