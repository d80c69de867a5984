"""Memories become retrievable through farmops.embed_memory, and forgetting removes them from search."""

from __future__ import annotations

import psycopg
import pytest
from conftest import tenant
from credit_helpers import add_member
from search_support import DIM, vec


def remember(conn, farm_id, user, content):
    with tenant(conn, farm_id, user):
        return conn.execute("SELECT farmops.remember(p_content => %s)", [content]).fetchone()[0]


def embed(conn, memory_id, vector, model="test-model"):
    conn.execute(
        "SELECT farmops.embed_memory(p_memory_id => %s, p_embedding => %s::public.vector, p_model => %s)",
        [memory_id, vector, model],
    )


def memory_hits(conn, query):
    return conn.execute(
        "SELECT content, source_type, source_id FROM farmops.search(p_query => %s::public.vector,"
        " p_source_types => ARRAY['memory'])",
        [query],
    ).fetchall()


def memory_vectors(admin, memory_id) -> int:
    return admin.execute(
        "SELECT count(*) FROM farmops.embeddings WHERE source_type = 'memory' AND source_id = %s", [memory_id]
    ).fetchone()[0]


def test_an_embedded_memory_is_found_and_forgetting_removes_it_at_once(app, admin, farm):
    memory = remember(app, farm, "alice", "  Vaccinates on Mondays  ")
    with tenant(app, farm, "alice"):
        embed(app, memory, vec(1))
        assert memory_hits(app, vec(1)) == [("Vaccinates on Mondays", "memory", memory)]
        embed(app, memory, vec(0, 1))  # re-embedding replaces, never duplicates
    assert memory_vectors(admin, memory) == 1
    with tenant(app, farm, "alice"):
        app.execute("SELECT farmops.forget(p_memory_id => %s)", [memory])
        assert memory_hits(app, vec(0, 1)) == []  # same transaction
    assert memory_vectors(admin, memory) == 0


def test_the_agent_may_index_a_memory_a_viewer_may_not(app, admin, farm):
    add_member(app, farm, "bot", "agent")
    add_member(app, farm, "ada", "viewer")
    memory = remember(app, farm, "bot", "Pond 3 is the nursery")
    with tenant(app, farm, "bot"):
        embed(app, memory, vec(1))
    with pytest.raises(psycopg.Error) as excinfo, tenant(app, farm, "ada"):
        embed(app, memory, vec(0, 1))
    assert excinfo.value.sqlstate == "OF003"


@pytest.mark.parametrize(
    ("memory", "vector", "model", "sqlstate"),
    [
        ("other-farm", vec(1), "m", "OF206"),
        ("unknown", vec(1), "m", "OF206"),
        ("own", None, "m", "OF006"),
        ("own", vec(1, dim=DIM - 1), "m", "OF301"),
        ("own", vec(), "m", "OF006"),  # the zero vector has no direction
        ("own", vec(1), None, "OF006"),
        ("own", vec(1), "x" * 201, "OF006"),
    ],
)
def test_bad_input_writes_nothing(app, admin, two_farms, memory, vector, model, sqlstate):
    farm_a, farm_b = two_farms
    own = remember(app, farm_a, "alice", "Feed arrives on Tuesdays")
    theirs = remember(app, farm_b, "bob", "Feed arrives on Tuesdays")
    target = {"own": own, "other-farm": theirs, "unknown": "00000000-0000-0000-0000-000000000000"}[memory]
    with pytest.raises(psycopg.Error) as excinfo, tenant(app, farm_a, "alice"):
        embed(app, target, vector, model)
    assert excinfo.value.sqlstate == sqlstate
    assert admin.execute("SELECT count(*) FROM farmops.embeddings").fetchone()[0] == 0


def test_no_tenant_context_is_refused(app, farm):
    memory = remember(app, farm, "alice", "Gate code changes monthly")
    with pytest.raises(psycopg.Error) as excinfo:
        embed(app, memory, vec(1))
    assert excinfo.value.sqlstate == "OF001"
