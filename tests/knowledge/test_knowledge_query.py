"""farmops.search: exact order, k vs farm size, global merge, tenant isolation, bad input."""

from __future__ import annotations

import math
import random
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import call, create_farm, raises_sqlstate, tenant
from support.knowledge import QUERY, ingest, ingest_global, search, unit2, vec, vec_array

ANGLES = [0, 20, 45, 70, 90, 180]  # cosine with the x axis: 1, .94, .71, .34, 0, -1


@pytest.fixture
def angled_farm(app, farm):
    """A farm with one document whose chunks lie at ANGLES degrees from the x axis."""
    with tenant(app, farm, "alice"):
        ingest(app, "Angles", "angles", [f"deg{a}" for a in ANGLES], [unit2(a) for a in ANGLES])
    return farm


def test_results_come_in_exact_score_order(app, angled_farm):
    with tenant(app, angled_farm, "alice"):
        rows = search(app, unit2(0), k=6)
    assert [r["content"] for r in rows] == [f"deg{a}" for a in ANGLES]
    for r, a in zip(rows, ANGLES, strict=True):
        assert r["score"] == pytest.approx(math.cos(math.radians(a)), abs=1e-6)
        assert (r["source"], r["source_type"], r["is_global"]) == ("Angles", "document", False)
    assert [r["chunk_index"] for r in rows] == list(range(6))


def test_default_k_is_four_and_k_limits(app, angled_farm):
    with tenant(app, angled_farm, "alice"):
        assert len(call(app, "search", QUERY, query=unit2(0))) == 4
        assert [r["content"] for r in search(app, unit2(90), k=1)] == ["deg90"]


def test_k_larger_than_the_farm_returns_every_row(app, angled_farm):
    with tenant(app, angled_farm, "alice"):
        rows = search(app, unit2(45), k=1000)
    assert sorted(r["content"] for r in rows) == sorted(f"deg{a}" for a in ANGLES)
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores, reverse=True)


def test_an_empty_farm_returns_nothing(app, farm):
    with tenant(app, farm, "alice"):
        assert search(app, vec(1), k=10) == []


def test_ties_are_broken_by_id_deterministically(app, farm):
    with tenant(app, farm, "alice"):
        ingest(app, "Ties", "ties", [f"t{i}" for i in range(8)], [vec(1, 1)] * 8)
        first = search(app, vec(1, 1), k=8)
        second = search(app, vec(1, 1), k=3)
    ids = [r["id"] for r in first]
    assert ids == sorted(ids)
    assert [r["id"] for r in second] == ids[:3]


def test_global_rows_merge_by_score(app, owner, angled_farm):
    ingest_global(owner, "Global", "global", ["g10", "g80"], [unit2(10), unit2(80)])
    with tenant(app, angled_farm, "alice"):
        rows = search(app, unit2(0), k=5)
        no_global = search(app, unit2(0), k=5, include_global=False)
        only_memory = search(app, unit2(0), k=5, source_types=["memory"])
    assert [r["content"] for r in rows] == ["deg0", "g10", "deg20", "deg45", "deg70"]
    g10 = rows[1]
    assert (g10["is_global"], g10["source"], g10["source_type"], g10["chunk_index"]) == (
        True,
        "Global",
        "document",
        0,
    )
    assert [r["content"] for r in no_global] == ["deg0", "deg20", "deg45", "deg70", "deg90"]
    assert only_memory == []


def test_global_knowledge_alone_for_an_empty_farm(app, owner, farm):
    ingest_global(owner, "Global", "global", ["g"], [vec(1)])
    with tenant(app, farm, "alice"):
        rows = search(app, vec(0, 1), k=3)
    assert [(r["content"], r["is_global"]) for r in rows] == [("g", True)]


def test_a_farm_row_wins_a_tie_with_a_global_row(app, owner, farm):
    ingest_global(owner, "Global", "global", ["g"], [vec(1)])
    with tenant(app, farm, "alice"):
        ingest(app, "Farm", "farm", ["f"], [vec(2)])
        rows = search(app, vec(1), k=2)
    assert [r["content"] for r in rows] == ["f", "g"]


def test_a_farm_never_sees_another_farms_rows_even_with_their_exact_vectors(app, two_farms):
    a, b = two_farms
    secret = vec(0, 0, 0, 1)
    with tenant(app, b, "bob"):
        doc_b = ingest(app, "B secret", "bob's secret", ["secret"] * 3, [secret] * 3)
    with tenant(app, a, "alice"):
        ingest(app, "A", "alice's", ["mine"], [vec(1)])
        rows = search(app, secret, k=10)
        assert [r["content"] for r in rows] == ["mine"]
        # No search function takes a farm id: search() scans the context's farm in its own
        # statements (the private helper that took one is gone, migration 0120).
        assert app.execute("SELECT to_regproc('farmops._farm_search_candidates')").fetchone()[0] is None
        assert (
            app.execute("SELECT count(*) FROM farmops.embeddings WHERE source_id = %s", [doc_b]).fetchone()[0]
            == 0
        )


@pytest.mark.parametrize(
    "call",
    [
        "farmops._global_search_candidates('[1,2,3]'::public.vector, 4)",
        "farmops._global_search_candidates('[1,2,3]'::public.vector, -1)",
        "farmops._global_walk_missed('[1,2,3]'::public.vector, NULL, '{}'::uuid[], 1)",
    ],
)
def test_the_candidate_helpers_are_private(app, farm, call):
    """They validate nothing (raw 22003, 2201W, 22000 before 0055): search() validates, then calls them."""
    with raises_sqlstate("42501"), tenant(app, farm, "alice"):
        app.execute(f"SELECT * FROM {call}", {"farm": farm, "q": vec(1)})


def test_a_deleted_document_disappears_in_the_same_transaction(app, farm):
    with tenant(app, farm, "alice"):
        doc = ingest(app, "Gone", "gone soon", ["gone"], [vec(1)])
        keep = ingest(app, "Kept", "kept", ["kept"], [vec(0, 1)])
        assert [r["content"] for r in search(app, vec(1), k=5)] == ["gone", "kept"]
        call(app, "delete_document", document_id=doc)
        rows = search(app, vec(1), k=5)
        assert [(r["content"], r["source_id"]) for r in rows] == [("kept", keep)]


def test_search_needs_a_tenant_context(app):
    with raises_sqlstate("OF001"):
        search(app, vec(1))


@pytest.mark.parametrize(
    ("query", "kwargs", "code"),
    [
        (None, {}, "OF006"),
        (vec(0), {}, "OF006"),  # the zero vector has no direction
        (vec(1, dim=3), {}, "OF301"),
        (vec(1, dim=1023), {}, "OF301"),
        (vec(1, dim=1025), {}, "OF301"),
        (vec(1), {"k": 0}, "OF006"),
        (vec(1), {"k": -1}, "OF006"),
        (vec(1), {"k": None}, "OF006"),
        (vec(1), {"k": 1001}, "OF006"),
        (vec(1), {"k": 2**31 - 1}, "OF006"),
        (vec(1), {"include_global": None}, "OF006"),
        (vec(1), {"source_types": []}, "OF006"),
        (vec(1), {"source_types": [None]}, "OF006"),
        (vec(1), {"source_types": ["document", "secrets"]}, "OF006"),
        (vec(1), {"source_types": ["x" * 1_000_000]}, "OF006"),
    ],
)
def test_bad_arguments_raise_documented_codes(app, angled_farm, query, kwargs, code):
    with raises_sqlstate(code), tenant(app, angled_farm, "alice"):
        search(app, query, **kwargs)


def test_malformed_vectors_are_refused_by_pgvector(app, angled_farm):
    for literal, code in (("not a vector", "22P02"), ("[1,NaN]", "22000"), ("[]", "22000")):
        with raises_sqlstate(code), tenant(app, angled_farm, "alice"):
            app.execute("SELECT * FROM farmops.search(p_query => %s::public.vector)", [literal])


def test_source_type_filter(app, farm):
    src = uuid.uuid4()
    with tenant(app, farm, "alice"):
        ingest(app, "Doc", "doc", ["doc"], [vec(1)])
        app.execute(
            "SELECT farmops.replace_source_embeddings(p_source_type => 'convo_summary', p_source_id => %s,"
            " p_chunks => ARRAY['summary'], p_embeddings => %s::public.vector[],"
            " p_model => 'amazon.titan-embed-text-v2:0')",
            [src, vec_array([vec(1, 0.1)])],
        )
        both = search(app, vec(1), k=5)
        summaries = search(app, vec(1), k=5, source_types=["convo_summary"])
    assert [r["content"] for r in both] == ["doc", "summary"]
    assert [(r["content"], r["source"], r["source_id"]) for r in summaries] == [
        ("summary", f"convo_summary:{src}", src)
    ]


def test_farms_are_exact_whatever_the_threshold(app, farm):
    """exact_search_max_rows governs the global base only: a farm above it is still scanned exactly."""
    n = 60
    vectors = [unit2(i * 3) for i in range(n)]  # 0..177 degrees, distinct scores
    with tenant(app, farm, "alice"):
        ingest(app, "Many", "many", [f"c{i}" for i in range(n)], vectors)
    for k in (1, 10, 59, 60, 200):
        with tenant(app, farm, "alice"):
            app.execute("SELECT set_config('farmops.exact_search_max_rows', '5', true)")
            rows = search(app, unit2(0), k=k)
        assert [r["content"] for r in rows] == [f"c{i}" for i in range(min(k, n))]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    points=st.lists(
        st.tuples(st.integers(-3, 3), st.integers(-3, 3), st.integers(-3, 3)), min_size=1, max_size=25
    ),
    query=st.tuples(st.integers(-3, 3), st.integers(-3, 3), st.integers(-3, 3)).filter(any),
    k=st.integers(1, 30),
    exact_max=st.sampled_from(["0", "3", "10000"]),
)
def test_search_matches_brute_force(app, points, query, k, exact_max):
    points = [p for p in points if any(p)] or [(1, 0, 0)]
    farm = create_farm(app, "Hypothesis", "hy")
    with tenant(app, farm, "hy"):
        ingest(app, "H", str(uuid.uuid4()), [str(p) for p in points], [vec(*p) for p in points])
        app.execute("SELECT set_config('farmops.exact_search_max_rows', %s, true)", [exact_max])
        rows = search(app, vec(*query), k=k, include_global=False)

    def cos(p):
        return sum(a * b for a, b in zip(p, query, strict=True)) / (
            math.dist(p, (0, 0, 0)) * math.dist(query, (0, 0, 0))
        )

    expected = sorted((cos(p) for p in points), reverse=True)[:k]
    assert len(rows) == min(k, len(points))
    assert [r["score"] for r in rows] == pytest.approx(expected, abs=1e-6)  # farms: always exact
    for r in rows:
        assert r["score"] == pytest.approx(cos(eval(r["content"])), abs=1e-6)


def _global_scans(app) -> tuple[int, int]:
    """(sequential scans, HNSW index scans) of the global base in this transaction so far."""
    return app.execute(
        """SELECT pg_stat_get_xact_numscans('farmops.global_embeddings'::regclass),
                  pg_stat_get_xact_numscans('farmops.global_embeddings_embedding_hnsw_idx'::regclass)"""
    ).fetchone()


def test_a_low_contrast_query_of_the_global_base_is_answered_exactly(app, owner, admin, farm):
    """Above exact_search_max_rows the global base answers from its HNSW graph, except for a query with
    nothing near it (a cheap walk's k-th row nearly as far as a typical row: a graph walk cannot rank rows
    that are all about equally far): that one is scanned exactly."""
    rng = random.Random(5)
    vectors, chunks = [], []
    for cluster in range(3):  # three tight clusters on the first three axes
        for i in range(40):
            parts = [0.0] * 8
            parts[cluster] = 1.0
            parts[3 + rng.randrange(5)] = rng.uniform(0.05, 0.3)
            vectors.append(vec(*parts))
            chunks.append(f"c{cluster}-{i}")
    ingest_global(owner, "Clusters", "clusters", chunks, vectors)
    admin.execute("ANALYZE farmops.global_embeddings")
    near, far = vec(1.0, 0.02, 0.01, 0.1), vec(*([0.0] * 9 + [1.0]))  # far: orthogonal to every row
    scans = {}
    for query, exact_expected in ((near, False), (far, True)):
        with tenant(app, farm, "alice"):
            app.execute("SELECT set_config('farmops.exact_search_max_rows', '0', true)")
            before = _global_scans(app)
            rows = search(app, query, k=10)
            after = _global_scans(app)
        seq_scans, index_scans = after[0] - before[0], after[1] - before[1]
        # A cheap walk first; if it found near rows, the full walk and the mirrored one.
        assert index_scans == (1 if exact_expected else 3)
        scans[exact_expected] = seq_scans
        truth = admin.execute(
            "SELECT content FROM farmops.global_embeddings "
            "ORDER BY public.cosine_distance(embedding, %s::public.vector), id LIMIT 10",
            [query],
        ).fetchall()
        assert [r["content"] for r in rows] == [t[0] for t in truth]
        assert len(rows) == 10
    assert scans[True] == scans[False] + 1, scans  # one exact scan more for the far query


def _walk_missed(admin, query: str, ids: list, kth: float) -> bool:
    """_global_walk_missed for a first walk that returned ``ids`` (their mean direction computed here)."""
    return admin.execute(
        """SELECT farmops._global_walk_missed(%(q)s::public.vector, (
               SELECT public.avg(public.l2_normalize(g.embedding)) FROM farmops.global_embeddings AS g
               WHERE g.id = ANY (%(ids)s::uuid[])), %(ids)s::uuid[], %(kth)s)""",
        {"q": query, "ids": ids, "kth": kth},
    ).fetchone()[0]


def test_a_walk_that_stayed_in_one_of_two_clusters_is_caught(owner, admin):
    """A query between two clusters: its 10 nearest are split over both. A first walk that returned the 10
    nearest of one cluster only is caught (the mirrored walk finds the other cluster's nearer rows); the
    true answer, and the answer for a query inside one cluster, are not."""
    tilts = {"a": [0.01 * i for i in range(1, 16)], "b": [0.01 * i + 0.005 for i in range(1, 16)]}
    ingest_global(owner, "A", "a", [f"a{t:.3f}" for t in tilts["a"]], [vec(1.0, t) for t in tilts["a"]])
    ingest_global(owner, "B", "b", [f"b{t:.3f}" for t in tilts["b"]], [vec(t, 1.0) for t in tilts["b"]])

    def nearest(query: str, where: str = "true") -> list:
        return admin.execute(
            "SELECT id, content, public.cosine_distance(embedding, %s::public.vector) AS d "
            f"FROM farmops.global_embeddings WHERE {where} ORDER BY d, id LIMIT 10",
            [query],
        ).fetchall()

    between = vec(1.0, 1.0)
    truth = nearest(between)
    one_side = nearest(between, "content LIKE 'a%%'")
    assert {content[0] for _, content, _ in truth} == {"a", "b"}
    assert _walk_missed(admin, between, [i for i, _, _ in one_side], one_side[-1][2]) is True
    assert _walk_missed(admin, between, [i for i, _, _ in truth], truth[-1][2]) is False
    inside = vec(1.0, 0.05)
    truth_inside = nearest(inside)
    assert _walk_missed(admin, inside, [i for i, _, _ in truth_inside], truth_inside[-1][2]) is False
    assert _walk_missed(admin, between, [], 1.0) is False  # nothing found: nothing to verify
