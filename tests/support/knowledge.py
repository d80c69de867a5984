"""Shared helpers for the tests/knowledge suites: tiny deterministic vectors padded to 1024-d."""

from __future__ import annotations

import math

import psycopg
from psycopg.rows import dict_row

DIM = 1024


def vec(*components: float, dim: int = DIM) -> str:
    """A pgvector literal: the given leading components, zeros after them (cast with ::public.vector)."""
    values = list(components) + [0.0] * (dim - len(components))
    return "[" + ",".join(repr(float(x)) for x in values) + "]"


def vec_array(vectors: list[str]) -> str:
    """A vector[] literal from vector literals (cast with ::public.vector[])."""
    return "{" + ",".join(f'"{v}"' for v in vectors) + "}"


def unit2(angle_deg: float) -> str:
    """The unit vector at ``angle_deg`` in the plane of the first two axes."""
    a = math.radians(angle_deg)
    return vec(math.cos(a), math.sin(a))


def ingest(conn: psycopg.Connection, title: str, content: str, chunks: list[str], vectors: list[str]):
    """Call farmops.ingest_document with named arguments; returns the document id."""
    return conn.execute(
        "SELECT farmops.ingest_document(p_title => %s, p_content => %s, p_chunks => %s,"
        " p_embeddings => %s::public.vector[], p_model => 'amazon.titan-embed-text-v2:0')",
        [title, content, chunks, vec_array(vectors)],
    ).fetchone()[0]


def ingest_global(conn: psycopg.Connection, title: str, content: str, chunks: list[str], vectors: list[str]):
    """Call farmops.ingest_global_document (as the owner role); returns the document id."""
    return conn.execute(
        "SELECT farmops.ingest_global_document(p_title => %s, p_content => %s, p_chunks => %s,"
        " p_embeddings => %s::public.vector[], p_model => 'amazon.titan-embed-text-v2:0')",
        [title, content, chunks, vec_array(vectors)],
    ).fetchone()[0]


def search(conn: psycopg.Connection, query: str, k: int = 4, include_global: bool = True, source_types=None):
    """Call farmops.search with named arguments; returns dict rows in rank order."""
    cur = conn.cursor(row_factory=dict_row)
    return cur.execute(
        "SELECT * FROM farmops.search(p_query => %s::public.vector, p_k => %s, p_include_global => %s,"
        " p_source_types => %s)",
        [query, k, include_global, source_types],
    ).fetchall()


def count(admin: psycopg.Connection, table: str) -> int:
    """Rows in a farmops table, counted by the superuser (RLS does not apply)."""
    return admin.execute(f"SELECT count(*) FROM farmops.{table}").fetchone()[0]
