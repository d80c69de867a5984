"""Ingesting and deleting retrieval rows: documents, other sources, the global knowledge base."""

from __future__ import annotations

import psycopg
import pytest
from support import call, race, raises_sqlstate, tenant, value
from support.knowledge import EMBEDDINGS, TITAN, count, ingest, ingest_global, search, unit2, vec, vec_array

MODEL = TITAN


_DEFAULT = object()


def _ingest_raw(conn, title="T", content="c", chunks=("a",), embeddings=_DEFAULT, model=MODEL):
    """ingest_document with any argument replaced, for the refusals."""
    embeddings = vec_array([vec(1)]) if embeddings is _DEFAULT else embeddings
    chunks = list(chunks) if chunks is not None else None
    return value(
        conn,
        "ingest_document",
        EMBEDDINGS,
        title=title,
        content=content,
        chunks=chunks,
        embeddings=embeddings,
        model=model,
    )


def test_ingest_stores_document_and_chunks_in_order(app, admin, farm):
    with tenant(app, farm, "alice"):
        doc = ingest(
            app,
            "Vaccines",
            "Newcastle at day 7. Gumboro at day 14.",
            ["Newcastle", "Gumboro"],
            [vec(1), vec(0, 1)],
        )
    rows = admin.execute(
        "SELECT farm_id, source_type, source_id, document_id, chunk_index, content, model "
        "FROM farmops.embeddings ORDER BY chunk_index"
    ).fetchall()
    assert rows == [
        (farm, "document", doc, doc, 0, "Newcastle", MODEL),
        (farm, "document", doc, doc, 1, "Gumboro", MODEL),
    ]
    h = admin.execute(
        "SELECT content_hash = encode(sha256(convert_to(content, 'UTF8')), 'hex'), created_by "
        "FROM farmops.documents"
    ).fetchone()
    assert h == (True, "alice")


def test_reingest_of_identical_content_is_a_noop(app, admin, farm):
    with tenant(app, farm, "alice"):
        first = ingest(app, "A", "same text", ["x"], [vec(1)])
        again = ingest(app, "Another title", "same text", ["y", "z"], [vec(0, 1), vec(0, 0, 1)])
        other = ingest(app, "B", "other text", ["x"], [vec(1)])
    assert first == again != other
    assert count(admin, "documents") == 2
    assert count(admin, "embeddings") == 2


def test_same_content_in_two_farms_is_two_documents(app, admin, two_farms):
    a, b = two_farms
    with tenant(app, a, "alice"):
        da = ingest(app, "A", "shared", ["x"], [vec(1)])
    with tenant(app, b, "bob"):
        db_ = ingest(app, "A", "shared", ["x"], [vec(1)])
    assert da != db_
    assert count(admin, "documents") == 2


def test_concurrent_ingests_of_the_same_content_make_one_document(connect, admin, farm):
    def work(conn):
        with tenant(conn, farm, "alice"):
            return ingest(conn, "T", "racing content", ["a", "b"], [vec(1), vec(0, 1)])

    results = race(connect, [work] * 4)
    assert [r for r in results if isinstance(r, Exception)] == []
    assert len(set(results)) == 1
    assert count(admin, "documents") == 1
    assert count(admin, "embeddings") == 2


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"title": None}, "OF006"),
        ({"title": ""}, "OF006"),
        ({"title": "x" * 501}, "OF006"),
        ({"title": "line\nbreak"}, "OF006"),
        ({"title": "t" * 1_000_000}, "OF006"),
        ({"content": None}, "OF006"),
        ({"content": "   "}, "OF006"),
        ({"content": "x" * (10 * 1024 * 1024 + 1)}, "OF006"),
        ({"model": None}, "OF006"),
        ({"model": ""}, "OF006"),
        ({"chunks": None}, "OF006"),
        ({"chunks": []}, "OF006"),
        ({"chunks": [None]}, "OF006"),
        ({"chunks": [" "]}, "OF006"),
        ({"chunks": ["a", "b"]}, "OF006"),  # 2 chunks, 1 embedding
        ({"embeddings": None}, "OF006"),
        ({"embeddings": "{}"}, "OF006"),
        ({"embeddings": "{NULL}"}, "OF006"),
        ({"embeddings": vec_array([vec(1), vec(1)])}, "OF006"),  # 1 chunk, 2 embeddings
        ({"embeddings": vec_array([vec(0)])}, "OF006"),  # zero vector
        ({"embeddings": vec_array([vec(1, dim=1023)])}, "OF301"),
        ({"embeddings": vec_array([vec(1, dim=3)])}, "OF301"),
        ({"chunks": ["a", "b"], "embeddings": vec_array([vec(1), vec(1, dim=1025)])}, "OF301"),
        (
            {"chunks": ["a", "b"], "embeddings": vec_array([vec(1), "NULL"]).replace('"NULL"', "NULL")},
            "OF006",
        ),
    ],
)
def test_ingest_rejects_bad_arguments_and_writes_nothing(app, admin, farm, kwargs, code):
    with raises_sqlstate(code), tenant(app, farm, "alice"):
        _ingest_raw(app, **kwargs)
    assert count(admin, "documents") == 0
    assert count(admin, "embeddings") == 0


def test_two_dimensional_arrays_are_refused(app, admin, farm):
    with raises_sqlstate("OF006"), tenant(app, farm, "alice"):
        app.execute(
            "SELECT farmops.ingest_document(p_title => 't', p_content => 'c', p_chunks => ARRAY[['a'],['b']],"
            " p_embeddings => ARRAY[[%s::public.vector],[%s::public.vector]], p_model => 'm')",
            [vec(1), vec(0, 1)],
        )
    assert count(admin, "documents") == 0


def test_nul_byte_is_refused_before_the_function_runs(app, admin, farm):
    # PostgreSQL text cannot hold NUL; psycopg refuses to send it (DataError, no SQLSTATE).
    with pytest.raises(psycopg.DataError), tenant(app, farm, "alice"):
        _ingest_raw(app, content="bad\x00byte")
    assert count(admin, "documents") == 0


def test_nan_in_a_vector_is_refused_by_pgvector(app, admin, farm):
    # pgvector: "NaN not allowed in vector"
    with raises_sqlstate("22000"), tenant(app, farm, "alice"):
        _ingest_raw(app, embeddings=vec_array([vec(float("nan"))]).replace("nan", "NaN"))
    assert count(admin, "documents") == 0


def test_unicode_and_a_one_megabyte_document_round_trip(app, admin, farm):
    content = "Ẹyin adìẹ 🐔 " + "x" * 1_000_000
    with tenant(app, farm, "alice"):
        doc = ingest(app, "Ẹyin 🐔", content, ["adìẹ 🐔"], [vec(1)])
        rows = search(app, vec(1), k=1)
    assert rows[0]["source"] == "Ẹyin 🐔" and rows[0]["content"] == "adìẹ 🐔"
    assert (
        admin.execute("SELECT content FROM farmops.documents WHERE id = %s", [doc]).fetchone()[0] == content
    )


@pytest.mark.parametrize("role", ["viewer", "agent"])
def test_viewers_and_the_agent_cannot_ingest_or_delete(app, admin, farm, role):
    with tenant(app, farm, "alice"):
        doc = ingest(app, "T", "c", ["a"], [vec(1)])
        app.execute("SELECT farmops.add_member(%s, 'vic', %s)", [farm, role])
    with raises_sqlstate("OF003"), tenant(app, farm, "vic"):
        ingest(app, "T2", "c2", ["a"], [vec(1)])
    with raises_sqlstate("OF003"), tenant(app, farm, "vic"):
        call(app, "delete_document", document_id=doc)
    with tenant(app, farm, "vic"):
        assert len(search(app, vec(1))) == 1  # but they can search
    assert count(admin, "documents") == 1


def test_workers_and_managers_can_ingest(app, admin, farm):
    with tenant(app, farm, "alice"):
        app.execute("SELECT farmops.add_member(%s, 'wendy', 'worker')", [farm])
        app.execute("SELECT farmops.add_member(%s, 'mona', 'manager')", [farm])
    with tenant(app, farm, "wendy"):
        ingest(app, "W", "worker doc", ["a"], [vec(1)])
    with tenant(app, farm, "mona"):
        ingest(app, "M", "manager doc", ["a"], [vec(1)])
    assert count(admin, "documents") == 2


def test_ingest_and_delete_need_a_tenant_context(app, admin):
    with raises_sqlstate("OF001"):
        _ingest_raw(app)
    with raises_sqlstate("OF001"):
        app.execute("SELECT farmops.delete_document(p_document_id => gen_random_uuid())")
    assert count(admin, "documents") == 0


def test_delete_document_removes_its_chunks(app, admin, farm):
    with tenant(app, farm, "alice"):
        doc = ingest(app, "T", "c", ["a", "b"], [vec(1), vec(0, 1)])
        call(app, "delete_document", document_id=doc)
    assert count(admin, "documents") == 0
    assert count(admin, "embeddings") == 0


def test_delete_of_another_farms_document_is_not_found(app, admin, two_farms):
    a, b = two_farms
    with tenant(app, b, "bob"):
        doc_b = ingest(app, "B", "b content", ["b"], [vec(1)])
    for bad in (doc_b, "00000000-0000-0000-0000-000000000000"):
        with raises_sqlstate("OF302"), tenant(app, a, "alice"):
            call(app, "delete_document", document_id=bad)
    with raises_sqlstate("OF006"), tenant(app, a, "alice"):
        app.execute("SELECT farmops.delete_document(p_document_id => NULL)")
    assert count(admin, "embeddings") == 1


def test_the_app_cannot_write_retrieval_tables_directly(app, farm):
    with pytest.raises(psycopg.errors.InsufficientPrivilege), tenant(app, farm, "alice"):
        app.execute(
            "INSERT INTO farmops.documents (farm_id, title, content, content_hash, model, created_by) "
            "VALUES (%s, 't', 'c', repeat('a', 64), 'm', 'alice')",
            [farm],
        )


def test_replace_source_embeddings_for_conversation_summaries(app, admin, farm):
    src = "11111111-1111-1111-1111-111111111111"

    def replace(source_type, source_id, chunks, vectors):
        return value(
            app,
            "replace_source_embeddings",
            EMBEDDINGS,
            source_type=source_type,
            source_id=source_id,
            chunks=chunks,
            embeddings=vec_array(vectors),
            model="m",
        )

    with tenant(app, farm, "alice"):
        assert replace("convo_summary", src, ["a", "b"], [vec(1), vec(0, 1)]) == 2
        assert replace("convo_summary", src, ["c"], [vec(0, 0, 1)]) == 1
        rows = search(app, vec(0, 0, 1), k=5, source_types=["convo_summary"])
        assert [(r["content"], r["source_type"], str(r["source_id"])) for r in rows] == [
            ("c", "convo_summary", src)
        ]
        # memories go through embed_memory, which checks the memory exists in this farm
        for bad in (["document", src], [None, src], ["convo_summary", None], ["memory", src], ["bogus", src]):
            with raises_sqlstate("OF006"), app.transaction():
                replace(*bad, ["a"], [vec(1)])
        assert value(app, "delete_source_embeddings", source_type="convo_summary", source_id=src) == 1
    assert count(admin, "embeddings") == 0


def test_global_documents_are_written_by_the_owner_only(app, owner, admin, farm):
    gid = ingest_global(owner, "Vaccination schedule", "global text", ["Newcastle day 7"], [vec(1)])
    assert ingest_global(owner, "Other title", "global text", ["x"], [vec(0, 1)]) == gid
    assert count(admin, "global_embeddings") == 1
    with pytest.raises(psycopg.errors.InsufficientPrivilege), tenant(app, farm, "alice"):
        ingest_global(app, "Mine", "app text", ["x"], [vec(1)])
    with pytest.raises(psycopg.errors.InsufficientPrivilege), tenant(app, farm, "alice"):
        call(app, "delete_global_document", document_id=gid)
    with raises_sqlstate("OF301"):
        ingest_global(owner, "bad", "bad", ["x"], [vec(1, dim=8)])
    # Readable inside any tenant context, nothing without one.
    assert app.execute("SELECT count(*) FROM farmops.global_embeddings").fetchone()[0] == 0
    with tenant(app, farm, "alice"):
        assert app.execute("SELECT count(*) FROM farmops.global_embeddings").fetchone()[0] == 1
    call(owner, "delete_global_document", document_id=gid)
    assert count(admin, "global_embeddings") == 0
    with raises_sqlstate("OF302"):
        call(owner, "delete_global_document", document_id=gid)


def test_another_farm_sees_none_of_the_rows(app, two_farms):
    a, b = two_farms
    with tenant(app, a, "alice"):
        ingest(app, "A", "a", ["a"], [unit2(10)])
    with tenant(app, b, "bob"):
        assert app.execute("SELECT count(*) FROM farmops.documents").fetchone()[0] == 0
        assert app.execute("SELECT count(*) FROM farmops.embeddings").fetchone()[0] == 0
