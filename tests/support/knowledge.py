"""Shared helpers for the tests/knowledge suites: tiny deterministic vectors padded to 1024-d."""

from __future__ import annotations

import math

import psycopg

from .calls import call, value

DIM = 1024
TITAN = "amazon.titan-embed-text-v2:0"
#: ``casts`` for :func:`support.call`: vector literals are text until cast.
EMBEDDINGS = {"embeddings": "public.vector[]"}
QUERY = {"query": "public.vector"}


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


def _document(title: str, content: str, chunks: list[str], vectors: list[str]) -> dict:
    return {
        "title": title,
        "content": content,
        "chunks": chunks,
        "embeddings": vec_array(vectors),
        "model": TITAN,
    }


def ingest(conn: psycopg.Connection, title: str, content: str, chunks: list[str], vectors: list[str]):
    """Call farmops.ingest_document (Titan's model name); returns the document id."""
    return value(conn, "ingest_document", EMBEDDINGS, **_document(title, content, chunks, vectors))


def ingest_global(conn: psycopg.Connection, title: str, content: str, chunks: list[str], vectors: list[str]):
    """Call farmops.ingest_global_document (as the owner role); returns the document id."""
    return value(conn, "ingest_global_document", EMBEDDINGS, **_document(title, content, chunks, vectors))


def search(conn: psycopg.Connection, query: str, k: int = 4, include_global: bool = True, source_types=None):
    """Call farmops.search; returns dict rows in rank order."""
    return call(
        conn, "search", QUERY, query=query, k=k, include_global=include_global, source_types=source_types
    )


def count(admin: psycopg.Connection, table: str) -> int:
    """Rows in a farmops table, counted by the superuser (RLS does not apply)."""
    return admin.execute(f"SELECT count(*) FROM farmops.{table}").fetchone()[0]
