"""farmops.search_for_run: lineage rows, run ownership, run state."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.rows import dict_row
from support import call, raises_sqlstate, tenant
from support.knowledge import QUERY, count, ingest, ingest_global, search, unit2, vec
from support.write_path import make_run


@pytest.fixture
def live_run(admin, farm):
    """A running AI run of ``farm``, reserved by its owner."""
    return make_run(admin, farm, user="alice")


def search_for_run(conn, run_id, query, k=4, include_global=True, source_types=None):
    """Call farmops.search_for_run; dict rows in rank order."""
    return call(
        conn,
        "search_for_run",
        QUERY,
        run_id=run_id,
        query=query,
        k=k,
        include_global=include_global,
        source_types=source_types,
    )


def test_search_for_run_records_each_result(app, owner, admin, farm, live_run):
    ingest_global(owner, "G", "global", ["g"], [unit2(10)])
    with tenant(app, farm, "alice"):
        ingest(app, "D", "doc", ["d0", "d30"], [unit2(0), unit2(30)])
        plain = search(app, unit2(0), k=3)
        rows = search_for_run(app, live_run, unit2(0), k=3)
        lineage = (
            app.cursor(row_factory=dict_row)
            .execute("SELECT * FROM farmops.ai_run_retrievals ORDER BY rank")
            .fetchall()
        )
    assert rows == plain
    assert [r["content"] for r in rows] == ["d0", "g", "d30"]
    assert [x["rank"] for x in lineage] == [1, 2, 3]
    assert len({x["search_id"] for x in lineage}) == 1
    for r, x in zip(rows, lineage, strict=True):
        assert (x["ai_run_id"], x["farm_id"], x["score"], x["is_global"]) == (
            live_run,
            farm,
            r["score"],
            r["is_global"],
        )
        assert (x["global_embedding_id"] if r["is_global"] else x["embedding_id"]) == r["id"]
        assert (x["embedding_id"] if r["is_global"] else x["global_embedding_id"]) is None
        assert (x["source_type"], x["source_id"], x["chunk_index"]) == (
            r["source_type"],
            r["source_id"],
            r["chunk_index"],
        )


def test_each_call_is_its_own_search(app, farm, live_run):
    with tenant(app, farm, "alice"):
        ingest(app, "D", "doc", ["d"], [vec(1)])
        search_for_run(app, live_run, vec(1))
        search_for_run(app, live_run, vec(1))
        n, searches = app.execute(
            "SELECT count(*), count(DISTINCT search_id) FROM farmops.ai_run_retrievals"
        ).fetchone()
    assert (n, searches) == (2, 2)


def test_lineage_outlives_a_deleted_document(app, admin, farm, live_run):
    with tenant(app, farm, "alice"):
        doc = ingest(app, "D", "doc", ["d"], [vec(1)])
        search_for_run(app, live_run, vec(1))
        call(app, "delete_document", document_id=doc)
    row = admin.execute("SELECT embedding_id, source_id, rank FROM farmops.ai_run_retrievals").fetchone()
    assert row == (None, doc, 1)


def test_another_farms_run_is_not_found_and_nothing_is_written(app, admin, two_farms):
    a, b = two_farms
    run_b = make_run(admin, b, user="bob", owner="bob")
    for bad in (run_b, "00000000-0000-0000-0000-000000000000"):
        with raises_sqlstate("OF102"), tenant(app, a, "alice"):
            ingest(app, "A", "a", ["a"], [vec(1)])
            search_for_run(app, bad, vec(1))
    assert count(admin, "ai_run_retrievals") == 0


@pytest.mark.parametrize("status", ["succeeded", "failed", "expired"])
def test_a_settled_run_cannot_retrieve(app, admin, farm, status):
    run = make_run(admin, farm, status=status, user="alice")
    with raises_sqlstate("OF205"), tenant(app, farm, "alice"):
        search_for_run(app, run, vec(1))
    assert count(admin, "ai_run_retrievals") == 0


def test_bad_arguments(app, admin, farm, live_run):
    cases = [((None, vec(1)), "OF006"), ((live_run, None), "OF006"), ((live_run, vec(1, dim=5)), "OF301")]
    for (run, query), code in cases:
        with raises_sqlstate(code), tenant(app, farm, "alice"):
            search_for_run(app, run, query)
    with raises_sqlstate("OF006"), tenant(app, farm, "alice"):
        search_for_run(app, live_run, vec(1), k=0)
    with raises_sqlstate("OF001"):
        search_for_run(app, live_run, vec(1))
    assert count(admin, "ai_run_retrievals") == 0


def test_lineage_is_private_to_the_farm_and_read_only(app, admin, two_farms):
    a, b = two_farms
    run_a = make_run(admin, a, user="alice")
    with tenant(app, a, "alice"):
        ingest(app, "A", "a", ["a"], [vec(1)])
        search_for_run(app, run_a, vec(1))
    with tenant(app, b, "bob"):
        assert app.execute("SELECT count(*) FROM farmops.ai_run_retrievals").fetchone()[0] == 0
    with pytest.raises(psycopg.errors.InsufficientPrivilege), tenant(app, a, "alice"):
        app.execute("DELETE FROM farmops.ai_run_retrievals")
    assert count(admin, "ai_run_retrievals") == 1


def test_the_agent_records_lineage_a_viewer_only_searches(app, admin, farm, live_run):
    with tenant(app, farm, "alice"):
        ingest(app, "A", "a", ["a"], [vec(1)])
        app.execute("SELECT farmops.add_member(%s, 'ai', 'agent')", [farm])
        app.execute("SELECT farmops.add_member(%s, 'ada', 'viewer')", [farm])
    with tenant(app, farm, "ai"):
        assert len(search_for_run(app, live_run, vec(1))) == 1
    with tenant(app, farm, "ada"):  # viewers are read-only: search, but write no lineage
        assert len(search(app, vec(1))) == 1
    with raises_sqlstate("OF003"), tenant(app, farm, "ada"):
        search_for_run(app, live_run, vec(1))
    assert count(admin, "ai_run_retrievals") == 1
