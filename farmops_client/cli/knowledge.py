"""The farm's knowledge base: add documents, search them."""

from __future__ import annotations

from pathlib import Path

import click

from .. import knowledge
from .base import (
    POSITIVE_INT32,
    UUID,
    FarmopsGroup,
    ProgressEmbedder,
    as_member,
    data_dir_option,
    dsn_option,
    embedder_for,
    embedder_option,
    emit,
    json_option,
    main,
    member_options,
    need_member,
    open_client,
    owner_transaction,
)


@main.group(cls=FarmopsGroup)
def kb() -> None:
    """The farm's knowledge base: add, list, delete and search documents; the global base."""


@kb.command("add")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--title", help="Title (default: the file name).")
@embedder_option
@member_options
def kb_add(file: Path, title, embedder, farm_id, user_id, dsn, data_dir) -> None:
    """Chunk, embed and store FILE (UTF-8 text) as a farm document; print its id."""
    farm_id, user_id = need_member(farm_id, user_id)
    text = _read_text(file)
    with (
        open_client(dsn, data_dir, embedder=ProgressEmbedder(embedder_for(embedder))) as client,
        client.tenant(farm_id, user_id) as t,
    ):
        click.echo(t.ingest_document(title or file.name, text))


@kb.command("search")
@click.argument("text")
@click.option("-k", "k", type=POSITIVE_INT32, default=4, show_default=True)
@click.option("--no-global", is_flag=True, help="Leave out the shared knowledge base.")
@embedder_option
@json_option
@member_options
def kb_search(text, k, no_global, embedder, as_json, farm_id, user_id, dsn, data_dir) -> None:
    """Search the farm's documents and memories (and the global base) for TEXT."""
    farm_id, user_id = need_member(farm_id, user_id)
    with (
        open_client(dsn, data_dir, embedder=embedder_for(embedder)) as client,
        client.tenant(farm_id, user_id) as t,
    ):
        rows = t.search(text, k=k, include_global=not no_global)
    emit(rows, as_json, ["score", "source", "content"], title="search")


DOCUMENT_COLUMNS = ["id", "title", "characters", "chunks", "model", "created_by", "created_at"]


def _read_text(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise click.UsageError(f"{file} is not UTF-8 text") from exc


@kb.command("list")
@click.option("--limit", type=POSITIVE_INT32, default=100, show_default=True)
@json_option
@member_options
def kb_list(limit, as_json, farm_id, user_id, dsn, data_dir) -> None:
    """The farm's documents, newest first (titles and sizes; search reads the content)."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        rows = t.documents(limit=limit)
    emit(rows, as_json, DOCUMENT_COLUMNS, title="documents")


@kb.command("delete")
@click.argument("document_ids", nargs=-1, required=True, type=UUID, metavar="ID...")
@member_options
def kb_delete(document_ids, farm_id, user_id, dsn, data_dir) -> None:
    """Delete documents and their chunks (members who may ingest); all or none in one transaction."""
    ids = list(dict.fromkeys(document_ids))
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        for document_id in ids:
            t.delete_document(document_id)
    for document_id in ids:
        click.echo(f"deleted {document_id}")


@kb.group("global", cls=FarmopsGroup)
def kb_global() -> None:
    """The global knowledge base every farm searches: the package owner's (farmops_owner) to write."""


@kb_global.command("add")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--title", help="Title (default: the file name).")
@embedder_option
@dsn_option
@data_dir_option
def kb_global_add(file: Path, title, embedder, dsn, data_dir) -> None:
    """Chunk, embed and store FILE in the global base as farmops_owner; print its id.

    Embeds first, then writes in one transaction (SET LOCAL ROLE farmops_owner): the DSN's login
    must be able to act as the package owner.
    """
    text = _read_text(file)
    if not text.strip():
        raise click.UsageError(f"{file} is empty")
    chosen = embedder_for(embedder)
    chunks, vectors = knowledge.embed_chunks(ProgressEmbedder(chosen), text)  # before the transaction
    with owner_transaction(dsn, data_dir) as conn:
        click.echo(
            knowledge.store_global_document(conn, title or file.name, text, chunks, vectors, chosen.model)
        )


@kb_global.command("list")
@click.option("--limit", type=POSITIVE_INT32, default=100, show_default=True)
@json_option
@dsn_option
@data_dir_option
def kb_global_list(limit, as_json, dsn, data_dir) -> None:
    """The global base's documents, newest first, as farmops_owner (members read them only through
    search, inside a tenant context)."""
    with owner_transaction(dsn, data_dir) as conn:
        rows = knowledge.global_documents(conn, limit=limit)
    emit(rows, as_json, DOCUMENT_COLUMNS, title="global documents")


@kb_global.command("delete")
@click.argument("document_ids", nargs=-1, required=True, type=UUID, metavar="ID...")
@dsn_option
@data_dir_option
def kb_global_delete(document_ids, dsn, data_dir) -> None:
    """Delete global documents and their chunks as farmops_owner; all or none in one transaction."""
    ids = list(dict.fromkeys(document_ids))
    with owner_transaction(dsn, data_dir) as conn:
        for document_id in ids:
            knowledge.delete_global_document(conn, document_id)
    for document_id in ids:
        click.echo(f"deleted {document_id}")
