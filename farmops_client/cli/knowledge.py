"""The farm's knowledge base: add documents, search them."""

from __future__ import annotations

from pathlib import Path

import click

from .base import (
    FarmopsGroup,
    embedder_for,
    embedder_option,
    emit,
    json_option,
    main,
    member_options,
    need_member,
    open_client,
)


@main.group(cls=FarmopsGroup)
def kb() -> None:
    """The farm's knowledge base: add documents, search them."""


@kb.command("add")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--title", help="Title (default: the file name).")
@embedder_option
@member_options
def kb_add(file: Path, title, embedder, farm_id, user_id, dsn, data_dir) -> None:
    """Chunk, embed and store FILE (UTF-8 text) as a farm document; print its id."""
    farm_id, user_id = need_member(farm_id, user_id)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise click.UsageError(f"{file} is not UTF-8 text") from exc
    with (
        open_client(dsn, data_dir, embedder=embedder_for(embedder)) as client,
        client.tenant(farm_id, user_id) as t,
    ):
        click.echo(t.ingest_document(title or file.name, text))


@kb.command("search")
@click.argument("text")
@click.option("-k", "k", type=int, default=4, show_default=True)
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
