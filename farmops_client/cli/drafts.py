"""The assistant's drafts: list, show, confirm, discard."""

from __future__ import annotations

import json

import click

from ..errors import FarmopsError
from .base import (
    FarmopsGroup,
    as_member,
    emit,
    emit_one,
    json_option,
    main,
    member_options,
    need_member,
    open_client,
)

DRAFT_COLUMNS = ["id", "record_type", "status", "payload", "created_by", "decided_by", "created_at"]


@main.group(cls=FarmopsGroup)
def drafts() -> None:
    """Review the assistant's drafts: list, show, confirm, discard."""


@drafts.command("list")
@click.option("--status", default="pending", show_default=True, help="Status to list, or 'all'.")
@json_option
@member_options
def drafts_list(status, as_json, farm_id, user_id, dsn, data_dir) -> None:
    """List the farm's drafts."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        rows = t.drafts(status=None if status == "all" else status)
    emit(rows, as_json, DRAFT_COLUMNS, title="drafts")


@drafts.command("show")
@click.argument("draft_id")
@json_option
@member_options
def drafts_show(draft_id, as_json, farm_id, user_id, dsn, data_dir) -> None:
    """Show one draft (exit 1 if it is not visible in this farm)."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        row = t.draft(draft_id)
    if row is None:
        raise FarmopsError(f"no draft {draft_id} in this farm")
    emit_one(row, as_json)


@drafts.command("confirm")
@click.argument("draft_id")
@click.option("--edits", help="JSON object of payload fields to change before writing.")
@member_options
def drafts_confirm(draft_id, edits, farm_id, user_id, dsn, data_dir) -> None:
    """Confirm a draft as a human member: the record is written in the same transaction."""
    farm_id, user_id = need_member(farm_id, user_id)
    try:
        parsed = json.loads(edits) if edits else None
    except json.JSONDecodeError as exc:
        raise click.UsageError(f"--edits is not JSON: {exc}") from exc
    with open_client(dsn, data_dir) as client, client.tenant(farm_id, user_id) as t:
        row = t.confirm_draft(draft_id, parsed)
    click.echo(f"confirmed {row['id']} -> record {row.get('record_id')}")


@drafts.command("discard")
@click.argument("draft_id")
@click.option("--reason", help="Why (stored on the draft).")
@member_options
def drafts_discard(draft_id, reason, farm_id, user_id, dsn, data_dir) -> None:
    """Discard a draft."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        row = t.discard_draft(draft_id, reason)
    click.echo(f"discarded {row['id']}")
