"""search_for_run against concurrent writers, two real connections as the application role.

A chunk the search found can be deleted before its lineage row is written (a raw 23503 from
ai_run_retrievals' foreign keys, before 0055); a run can be settled while a search of it runs.
"""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from psycopg.rows import dict_row
from support import tenant

MODEL = "amazon.titan-embed-text-v2:0"
DIM = 1024


def vec(*components: float) -> str:
    return "[" + ",".join(repr(float(x)) for x in [*components, *[0.0] * (DIM - len(components))]) + "]"


def ingest(conn, title, chunks, vectors) -> object:
    return conn.execute(
        "SELECT farmops.ingest_document(p_title => %s, p_content => %s, p_chunks => %s,"
        " p_embeddings => %s::vector[], p_model => %s)",
        [title, title + " content", chunks, vectors, MODEL],
    ).fetchone()[0]


@pytest.fixture
def knowledge(app, owner, farm):
    """A live run of ``farm`` and one chunk of each kind, all near vec(1)."""
    with tenant(app, farm, "alice"):
        app.execute("SELECT farmops.grant_credits(%s, 10, 'test')", [farm])
    with tenant(app, farm, "alice"):
        run = app.execute("SELECT id FROM farmops.reserve_credits('chat', 'test-model', 1)").fetchone()[0]
    summary = "00000000-0000-4000-8000-000000000001"
    with tenant(app, farm, "alice"):
        app.execute("SELECT farmops.start_run(%s)", [run])
        doc = ingest(app, "doc", ["d0", "d1"], [vec(1, 0.1), vec(1, 0.2)])
        memory = app.execute("SELECT farmops.remember('the well pump is behind the barn')").fetchone()[0]
        app.execute("SELECT farmops.embed_memory(%s, %s::vector, %s)", [memory, vec(1, 0.3), MODEL])
        app.execute(
            "SELECT farmops.replace_source_embeddings('convo_summary', %s, %s, %s::vector[], %s)",
            [summary, ["s0"], [vec(1, 0.4)], MODEL],
        )
    glob = owner.execute(
        "SELECT farmops.ingest_global_document('global', 'global content', %s, %s::vector[], %s)",
        [["g0"], [vec(1, 0.5)], MODEL],
    ).fetchone()[0]
    return {"farm": farm, "run": run, "doc": doc, "memory": memory, "summary": summary, "global": glob}


def delete_document(conn, k):
    conn.execute("SELECT farmops.delete_document(%s)", [k["doc"]])


def forget(conn, k):
    conn.execute("SELECT farmops.forget(%s)", [k["memory"]])


def embed_memory_again(conn, k):
    conn.execute("SELECT farmops.embed_memory(%s, %s::vector, %s)", [k["memory"], vec(1, 0.31), MODEL])


def replace_source_embeddings(conn, k):
    conn.execute(
        "SELECT farmops.replace_source_embeddings('convo_summary', %s, %s, %s::vector[], %s)",
        [k["summary"], ["s0 again"], [vec(1, 0.41)], MODEL],
    )


def delete_global_document(conn, k):
    conn.execute("SELECT farmops.delete_global_document(%s)", [k["global"]])


def in_thread(fn) -> tuple[threading.Thread, dict]:
    """Run ``fn`` in a thread; the dict gets 'result' or 'error'."""
    out: dict = {}

    def run():
        try:
            out["result"] = fn()
        except psycopg.Error as exc:
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def blocked_or_done(admin, pid: int, thread: threading.Thread, timeout: float = 15) -> bool:
    """True once backend ``pid`` waits for a lock, False if the thread finished without waiting."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not thread.is_alive():
            return False
        waiting = admin.execute("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", [pid])
        if waiting.fetchone()[0]:
            return True
        time.sleep(0.02)
    raise AssertionError("neither blocked nor done")


def search_for_run_committed(conn, farm, run):
    """search_for_run of vec(1) in its own tenant transaction; returns the rows."""
    with tenant(conn, farm, "alice"), conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM farmops.search_for_run(p_run_id => %s, p_query => %s::vector, p_k => 10)",
            [run, vec(1)],
        ).fetchall()


def lineage(admin, run) -> list[tuple]:
    return admin.execute(
        "SELECT rank, coalesce(embedding_id, global_embedding_id) FROM farmops.ai_run_retrievals"
        " WHERE ai_run_id = %s ORDER BY rank",
        [run],
    ).fetchall()


@pytest.mark.parametrize(
    "deleter",
    [delete_document, forget, embed_memory_again, replace_source_embeddings, delete_global_document],
)
def test_a_chunk_deleted_during_the_search_is_neither_returned_nor_recorded(
    connect, admin, knowledge, deleter
):
    k = knowledge
    before = {
        r[0]
        for r in admin.execute(
            "SELECT id FROM farmops.embeddings UNION ALL SELECT id FROM farmops.global_embeddings"
        )
    }
    writer = connect("owner" if deleter is delete_global_document else "app", autocommit=False)
    if deleter is not delete_global_document:
        writer.execute("SELECT farmops.begin_tenant(%s, 'alice')", [k["farm"]])
    deleter(writer, k)  # not committed yet: the search sees the chunk, its lock is the deleter's
    searcher = connect("app")
    thread, out = in_thread(lambda: search_for_run_committed(searcher, k["farm"], k["run"]))
    blocked_or_done(admin, searcher.info.backend_pid, thread)
    writer.commit()
    thread.join(30)

    assert "error" not in out, out.get("error")
    rows = out["result"]
    after = {
        r[0]
        for r in admin.execute(
            "SELECT id FROM farmops.embeddings UNION ALL SELECT id FROM farmops.global_embeddings"
        )
    }
    deleted = before - after
    assert deleted, "the deleter deleted nothing"
    returned = [r["id"] for r in rows]
    assert not deleted & set(returned)
    assert len(rows) == len(before) - len(deleted)  # every other chunk (k = 10 > 5 chunks)
    # Exactly what was returned is recorded, ranked 1..n; the deleted chunk nowhere.
    assert lineage(admin, k["run"]) == list(enumerate(returned, start=1))


def test_a_second_search_skips_what_a_waiting_deleter_deleted_instead_of_deadlocking(
    connect, admin, knowledge
):
    k = knowledge
    searcher = connect("app", autocommit=False)
    searcher.execute("SELECT farmops.begin_tenant(%s, 'alice')", [k["farm"]])
    query = "SELECT content FROM farmops.search_for_run(p_run_id => %s, p_query => %s::vector, p_k => %s)"
    # Records (and key-share locks) chunk d1 only.
    assert [r[0] for r in searcher.execute(query, [k["run"], vec(1, 0.2), 1])] == ["d1"]
    writer = connect("app")
    # The deleter deletes the document and chunk d0, then waits for this transaction's lock on d1.
    thread, out = in_thread(
        lambda: (
            writer.execute("BEGIN"),
            writer.execute("SELECT farmops.begin_tenant(%s, 'alice')", [k["farm"]]),
            delete_document(writer, k),
            writer.execute("COMMIT"),
        )
    )
    assert blocked_or_done(admin, writer.info.backend_pid, thread)
    # Waiting for d0 here would close the cycle (40P01): d0 is being deleted, so it is left out.
    second = sorted(r[0] for r in searcher.execute(query, [k["run"], vec(1), 10]))
    searcher.commit()
    thread.join(30)
    assert "error" not in out, out.get("error")
    assert second == ["d1", "g0", "s0", "the well pump is behind the barn"]
    assert (
        admin.execute("SELECT count(*) FROM farmops.documents WHERE id = %s", [k["doc"]]).fetchone()[0] == 0
    )


def propose(conn, run):
    conn.execute("SELECT farmops.set_autonomy(p_tier => 'draft')")
    return conn.execute(
        "SELECT * FROM farmops.propose_write(%s, 'note', '{\"body\": \"b\"}')", [run]
    ).fetchall()


def recommend(conn, run):
    return conn.execute("SELECT farmops.recommend(%s, 'title', 'body')", [run]).fetchall()


def search(conn, run):
    return conn.execute("SELECT * FROM farmops.search_for_run(%s, %s::vector, 10)", [run, vec(1)]).fetchall()


@pytest.mark.parametrize(
    "write", [search, recommend, propose], ids=["search_for_run", "recommend", "propose_write"]
)
def test_a_write_for_a_run_waits_for_a_concurrent_settle_and_is_then_refused(
    connect, admin, knowledge, write
):
    k = knowledge
    settler = connect("app", autocommit=False)
    settler.execute("SELECT farmops.begin_tenant(%s, 'alice')", [k["farm"]])
    settler.execute("SELECT farmops.settle_run(%s, 'succeeded', p_credits_actual => 1)", [k["run"]])
    writer = connect("app")

    def in_tenant():
        with tenant(writer, k["farm"], "alice"):
            return write(writer, k["run"])

    thread, out = in_thread(in_tenant)
    # The write must wait for the settle's row lock (_lock_run reads the run FOR SHARE)...
    assert blocked_or_done(admin, writer.info.backend_pid, thread)
    settler.commit()
    thread.join(30)
    # ...and then see the settled run: OF205, nothing written for a settled run.
    assert getattr(out.get("error"), "sqlstate", None) == "OF205", out
    written = admin.execute(
        "SELECT (SELECT count(*) FROM farmops.ai_run_retrievals WHERE ai_run_id = %(r)s)"
        " + (SELECT count(*) FROM farmops.ai_recommendations WHERE ai_run_id = %(r)s)"
        " + (SELECT count(*) FROM farmops.assistant_drafts WHERE ai_run_id = %(r)s)",
        {"r": k["run"]},
    ).fetchone()[0]
    assert written == 0


def test_a_settle_waits_for_a_search_in_progress(connect, admin, knowledge):
    k = knowledge
    searcher = connect("app", autocommit=False)
    searcher.execute("SELECT farmops.begin_tenant(%s, 'alice')", [k["farm"]])
    searcher.execute("SELECT * FROM farmops.search_for_run(%s, %s::vector, 10)", [k["run"], vec(1)])
    settler = connect("app")

    def settle():
        with tenant(settler, k["farm"], "alice"):
            return settler.execute(
                "SELECT status FROM farmops.settle_run(%s, 'succeeded', p_credits_actual => 1)", [k["run"]]
            ).fetchone()[0]

    thread, out = in_thread(settle)
    assert blocked_or_done(admin, settler.info.backend_pid, thread)
    searcher.commit()
    thread.join(30)
    assert out == {"result": "succeeded"}
    # The lineage was written while the run was live, and it stays.
    assert len(lineage(admin, k["run"])) == 5
