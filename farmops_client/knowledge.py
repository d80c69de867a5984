"""Knowledge: documents, memories and search over them, with the embedding model beside every vector.

Embedding is a network call (Titan) and never happens inside a transaction the client opened
for it: the text is embedded first, then the vectors go to the database together with the
model that made them (``p_model``), so vectors of two models never mix silently in one index.

Functions taking a :class:`~farmops_client.session.Session` use its embedder and run in its
transaction; functions taking a connection run in the caller's (the assistant's short) one.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from pgvector import Vector

from . import db
from .arguments import optional_uuid_arg, uuid_arg
from .embeddings import Embedder, chunk_text
from .errors import NotConfigured
from .session import Session


def embedder_of(t: Session) -> Embedder:
    """The session's embedder, or :class:`NotConfigured`: farmops never picks one by itself."""
    if t.embedder is None:
        raise NotConfigured("no embedder configured: pass embedder= to farmops_client.connect()")
    return t.embedder


def embed_one(embedder: Embedder, text: str) -> Vector:
    """One text's vector (a network call for Titan: keep it outside transactions)."""
    return Vector(embedder.embed([text])[0])


def redacted_for_embedding(t: Session, text: str) -> str:
    """``text`` with the PII the farm does not keep redacted (``farmops.redact_pii_for_farm``).

    Whatever is embedded goes through this first: a vector cannot be redacted afterwards, so the
    database refuses chunks and memories that still hold such data (``PiiNotRedacted``). In the
    session's transaction when one is open, else in a short one (never during the embedding call).
    """
    if t.in_transaction:
        return db.call(t.conn, "redact_pii_for_farm", text=text)[0]["redacted"]
    with t.short_transaction() as conn:
        cur = db.send(conn, "redact_pii_for_farm", text=text)
    with db.translated():
        return cur.fetchone()["redacted"]


def embed_metered(embedder: Embedder, texts: list[str]) -> tuple[list[Vector], int | None]:
    """Embed ``texts`` and say how many input tokens the provider reported for them (``None``: the
    embedder calls no provider, like the offline lexical one, so there is nothing to meter)."""
    counted = getattr(embedder, "embed_counted", None)
    if counted is None:
        return [Vector(v) for v in embedder.embed(texts)], None
    vectors, tokens = counted(texts)
    return [Vector(v) for v in vectors], tokens


def meter(
    conn: psycopg.Connection, embedder: Embedder, tokens: int | None, feature: str, run_id: UUID | None = None
) -> None:
    """``farmops.record_usage`` for an embedding call, in the caller's transaction (tenant context set):
    the database prices it and counts it against the farm's budgets (a call serving ``run_id`` counts
    under the run's feature, ``feature`` is then only the client's label). Nothing to meter: no statement."""
    if tokens is not None:
        db.send(
            conn, "record_usage", model=embedder.model, input_tokens=tokens, feature=feature, run_id=run_id
        )


def _query_args(vector: Vector, model: str) -> dict[str, Any]:
    """The arguments that carry a query vector: the vector, and the model that made it (the database
    refuses a model other than the one that made the farm's vectors: ``EmbeddingModelMismatch``)."""
    return {"query": vector, "model": model}


def search_vector(
    conn: psycopg.Connection,
    vector: Vector,
    model: str,
    *,
    k: int = 4,
    include_global: bool = True,
    source_types: list[str] | None = None,
) -> list[dict[str, Any]]:
    """``farmops.search`` with a vector made by ``model``, in the caller's transaction."""
    return db.call(
        conn,
        "search",
        {"query": "vector"},
        **_query_args(vector, model),
        k=k,
        include_global=include_global,
        source_types=source_types,
    )


def search_for_run(
    conn: psycopg.Connection, run_id: UUID, vector: Vector, model: str, *, k: int = 4
) -> psycopg.Cursor[dict[str, Any]]:
    """``farmops.search_for_run``: search on behalf of a live run, recording its retrievals.

    Queued in the caller's (pipelined) transaction: read the returned cursor after it.
    """
    return db.send(
        conn, "search_for_run", {"query": "vector"}, run_id=run_id, **_query_args(vector, model), k=k
    )


#: ``farmops.remember`` and ``farmops.embed_memory`` in one statement (one round trip).
STORE_MEMORY = (
    "SELECT m.id AS memory_id "
    "FROM farmops.remember(p_content => %(content)s, p_run_id => %(run_id)s) AS m(id), "
    "LATERAL farmops.embed_memory(p_memory_id => m.id, p_embedding => %(embedding)s::vector, "
    "p_model => %(model)s) AS e"
)


def store_memory(
    conn: psycopg.Connection, content: str, vector: Vector, model: str, run_id: UUID | None = None
) -> psycopg.Cursor[dict[str, Any]]:
    """In the caller's transaction: ``farmops.remember`` the fact and index it with its vector, in
    one statement; the cursor gives ``memory_id`` (in a pipelined transaction, read it after)."""
    return db.execute(
        conn, STORE_MEMORY, {"content": content, "run_id": run_id, "embedding": vector, "model": model}
    )


def search(
    t: Session, text: str, *, k: int = 4, include_global: bool = True, source_types: list[str] | None = None
) -> list[dict[str, Any]]:
    """Embed ``text`` and ``farmops.search`` this farm's knowledge (plus the global base)."""
    embedder = embedder_of(t)
    (vector,), tokens = embed_metered(embedder, [text])
    meter(t.begin(), embedder, tokens, "search")
    return search_vector(
        t.begin(), vector, embedder.model, k=k, include_global=include_global, source_types=source_types
    )


def remember(t: Session, content: str, *, run_id: UUID | None = None) -> UUID:
    """Store a durable farm fact and make it retrievable (``farmops.remember`` + ``embed_memory``).

    The fact is embedded first (outside the transaction when none is open); the database
    deduplicates it and indexes the text it stored.
    """
    run_id = optional_uuid_arg(run_id, "run id")
    embedder = embedder_of(t)
    content = redacted_for_embedding(t, content)
    (vector,), tokens = embed_metered(embedder, [content])
    meter(t.begin(), embedder, tokens, "remember", run_id)
    cur = store_memory(t.begin(), content, vector, embedder.model, run_id)
    with db.translated():
        return cur.fetchone()["memory_id"]


def ingest_document(t: Session, title: str, content: str, *, max_chars: int = 1200) -> UUID:
    """Redact, chunk, embed (outside the transaction when none is open) and ``farmops.ingest_document``.

    The chunks are cut from the redacted text (so no PII straddles a chunk boundary); the document
    goes as given and the database redacts it with the farm's policy, counting the findings.
    """
    embedder = embedder_of(t)
    clean = redacted_for_embedding(t, content)
    chunks = chunk_text(clean, max_chars) or [clean]
    vectors, tokens = embed_metered(embedder, chunks)
    meter(t.begin(), embedder, tokens, "ingest")
    return t.call(
        "ingest_document",
        {"embeddings": "vector[]"},
        title=title,
        content=content,
        chunks=chunks,
        embeddings=vectors,
        model=embedder.model,
    )[0]["ingest_document"]


def delete_document(t: Session, document_id: UUID | str) -> None:
    """``farmops.delete_document``."""
    t.call("delete_document", document_id=uuid_arg(document_id, "document id"))


def ingest_global_document(
    conn: psycopg.Connection, embedder: Embedder, title: str, content: str, *, max_chars: int = 1200
) -> UUID:
    """``farmops.ingest_global_document`` (the package owner only): shared knowledge for every farm.

    The chunks are cut from the redacted text (the global base keeps no PII kind).
    """
    clean = db.call(conn, "redact_pii", text=content)[0]["redacted"]
    chunks = chunk_text(clean, max_chars) or [clean]
    vectors = [Vector(v) for v in embedder.embed(chunks)]
    return db.value(
        conn,
        "ingest_global_document",
        {"embeddings": "vector[]"},
        title=title,
        content=content,
        chunks=chunks,
        embeddings=vectors,
        model=embedder.model,
    )


#: The farm's documents without their content, newest first.
DOCUMENTS = (
    "SELECT d.id, d.title, char_length(d.content) AS characters, "
    "(SELECT count(*) FROM farmops.embeddings AS e WHERE e.farm_id = d.farm_id AND e.document_id = d.id)"
    " AS chunks, d.model, d.created_by, d.created_at "
    "FROM farmops.documents AS d ORDER BY d.created_at DESC, d.id LIMIT %(limit)s"
)


def documents(t: Session, *, limit: int = 100) -> list[dict[str, Any]]:
    """The farm's documents (no content: title, size, chunks, model), newest first."""
    return t.execute(DOCUMENTS, {"limit": limit}).fetchall()


def global_documents(conn: psycopg.Connection, *, limit: int = 100) -> list[dict[str, Any]]:
    """The global knowledge base's documents (no content), newest first; any role may read them."""
    return db.execute(
        conn,
        "SELECT d.id, d.title, char_length(d.content) AS characters, "
        "(SELECT count(*) FROM farmops.global_embeddings AS e WHERE e.document_id = d.id) AS chunks, "
        "d.model, d.created_by, d.created_at "
        "FROM farmops.global_documents AS d ORDER BY d.created_at DESC, d.id LIMIT %(limit)s",
        {"limit": limit},
    ).fetchall()


def delete_global_document(conn: psycopg.Connection, document_id: UUID | str) -> None:
    """``farmops.delete_global_document`` (the package owner only): OF302 if there is none."""
    db.call(conn, "delete_global_document", document_id=document_id)


def embed_chunks(
    embedder: Embedder, content: str, *, max_chars: int = 1200
) -> tuple[list[str], list[Vector]]:
    """Chunk ``content`` and embed the chunks (a network call: outside any transaction)."""
    chunks = chunk_text(content, max_chars) or [content]
    return chunks, [Vector(v) for v in embedder.embed(chunks)]


def store_global_document(
    conn: psycopg.Connection, title: str, content: str, chunks: list[str], vectors: list[Vector], model: str
) -> UUID:
    """``farmops.ingest_global_document`` with vectors made beforehand (:func:`embed_chunks`); owner only."""
    return db.value(
        conn,
        "ingest_global_document",
        {"embeddings": "vector[]"},
        title=title,
        content=content,
        chunks=chunks,
        embeddings=vectors,
        model=model,
    )
