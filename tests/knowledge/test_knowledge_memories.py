"""Memories become retrievable through farmops.embed_memory, and forgetting removes them from search."""

from __future__ import annotations

import pytest
from support import call, raises_sqlstate, tenant, value
from support.credits import add_member
from support.knowledge import DIM, search, vec


def remember(conn, farm_id, user, content):
    with tenant(conn, farm_id, user):
        return value(conn, "remember", content=content)


def embed(conn, memory_id, vector, model="test-model"):
    casts = {"embedding": "public.vector"}
    call(conn, "embed_memory", casts, memory_id=memory_id, embedding=vector, model=model)


def memory_hits(conn, query):
    hits = search(conn, query, source_types=["memory"])
    return [(h["content"], h["source_type"], h["source_id"]) for h in hits]


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
        call(app, "forget", memory_id=memory)
        assert memory_hits(app, vec(0, 1)) == []  # same transaction
    assert memory_vectors(admin, memory) == 0


def test_the_agent_may_index_a_memory_a_viewer_may_not(app, admin, farm):
    add_member(app, farm, "bot", "agent")
    add_member(app, farm, "ada", "viewer")
    memory = remember(app, farm, "bot", "Pond 3 is the nursery")
    with tenant(app, farm, "bot"):
        embed(app, memory, vec(1))
    with raises_sqlstate("OF003"), tenant(app, farm, "ada"):
        embed(app, memory, vec(0, 1))


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
    with raises_sqlstate(sqlstate), tenant(app, farm_a, "alice"):
        embed(app, target, vector, model)
    assert admin.execute("SELECT count(*) FROM farmops.embeddings").fetchone()[0] == 0


def test_no_tenant_context_is_refused(app, farm):
    memory = remember(app, farm, "alice", "Gate code changes monthly")
    with raises_sqlstate("OF001"):
        embed(app, memory, vec(1))
