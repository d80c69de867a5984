"""The knowledge writers store the text they validated: padded titles and models are stored trimmed,
blank or control-character ones are OF006 (they validated btrim(x) but stored x: raw 23514)."""

from __future__ import annotations

import psycopg
import pytest
from support import sqlstate_of, tenant

MODEL = "amazon.titan-embed-text-v2:0"
DIM = 1024
VEC = "[" + ",".join(["1.0"] + ["0.0"] * (DIM - 1)) + "]"
SUMMARY = "00000000-0000-4000-8000-000000000002"


def ingest_document(conn, title, model):
    return conn.execute(
        "SELECT farmops.ingest_document(%s, 'content', ARRAY['c'], ARRAY[%s::vector], %s)",
        [title, VEC, model],
    ).fetchone()[0]


def ingest_global_document(conn, title, model):
    return conn.execute(
        "SELECT farmops.ingest_global_document(%s, 'global content', ARRAY['c'], ARRAY[%s::vector], %s)",
        [title, VEC, model],
    ).fetchone()[0]


def embed_memory(conn, model):
    memory = conn.execute("SELECT farmops.remember('the gate sticks')").fetchone()[0]
    conn.execute("SELECT farmops.embed_memory(%s, %s::vector, %s)", [memory, VEC, model])
    return memory


def replace_source_embeddings(conn, model):
    conn.execute(
        "SELECT farmops.replace_source_embeddings('convo_summary', %s, ARRAY['s'], ARRAY[%s::vector], %s)",
        [SUMMARY, VEC, model],
    )


def test_padded_titles_and_models_are_stored_trimmed(app, owner, farm):
    with tenant(app, farm, "alice"):
        doc = ingest_document(app, "  Vaccination plan  ", f"  {MODEL}  ")
        embed_memory(app, f" {MODEL} ")
        replace_source_embeddings(app, f"   {MODEL}")
        assert app.execute("SELECT title, model FROM farmops.documents WHERE id = %s", [doc]).fetchone() == (
            "Vaccination plan",
            MODEL,
        )
        assert app.execute("SELECT DISTINCT model FROM farmops.embeddings").fetchall() == [(MODEL,)]
    glob = ingest_global_document(owner, "  Global  ", f" {MODEL} ")
    assert owner.execute(
        "SELECT title, model FROM farmops.global_documents WHERE id = %s", [glob]
    ).fetchone() == (
        "Global",
        MODEL,
    )


@pytest.mark.parametrize("bad", ["", "   ", "\x01", "x\x1fy", " \x7f ", "\tx"])
@pytest.mark.parametrize(
    "writer", ["ingest_document:title", "ingest_document:model", "embed_memory", "replace", "global"]
)
def test_blank_or_control_character_text_is_of006(app, owner, farm, writer, bad):
    with pytest.raises(psycopg.Error) as excinfo:
        if writer == "global":
            ingest_global_document(owner, bad, MODEL)
        else:
            with tenant(app, farm, "alice"):
                if writer == "ingest_document:title":
                    ingest_document(app, bad, MODEL)
                elif writer == "ingest_document:model":
                    ingest_document(app, "t", bad)
                elif writer == "embed_memory":
                    embed_memory(app, bad)
                else:
                    replace_source_embeddings(app, bad)
    assert sqlstate_of(excinfo) == "OF006"
