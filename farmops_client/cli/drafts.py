"""The assistant's drafts: list, show, confirm (in bulk), discard, watch."""

from __future__ import annotations

import json
import sys
import time

import click
from psycopg import sql

from .. import db as fdb
from .. import write_path
from ..errors import FarmopsError
from ..session import Session
from .base import (
    APP_ROLE,
    EXIT_REFUSED,
    POSITIVE_INT32,
    UUID,
    FarmopsGroup,
    as_member,
    cell,
    csv_text,
    emit,
    emit_one,
    json_option,
    jsonable,
    main,
    member_options,
    need_member,
    open_client,
    output_format,
    progress_bar,
    resolve_dsn,
)

DRAFT_COLUMNS = [
    "id",
    "record_type",
    "status",
    "payload",
    "created_by",
    "decided_by",
    "created_at",
    "expires_at",
]


@main.group(cls=FarmopsGroup)
def drafts() -> None:
    """Review the assistant's drafts: list, show, confirm (in bulk), discard, watch for new ones."""


@drafts.command("list")
@click.option(
    "--status",
    type=click.Choice(["pending", "confirmed", "discarded", "expired", "auto_applied", "all"]),
    default="pending",
    show_default=True,
    help="Status to list, or 'all'.",
)
@click.option("--limit", type=POSITIVE_INT32, default=100, show_default=True)
@json_option
@member_options
def drafts_list(status, limit, as_json, farm_id, user_id, dsn, data_dir) -> None:
    """List the farm's drafts, newest first."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        rows = t.drafts(status=None if status == "all" else status, limit=limit)
    emit(rows, as_json, DRAFT_COLUMNS, title="drafts")


@drafts.command("show")
@click.argument("draft_id", type=UUID)
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
@click.argument("draft_ids", nargs=-1, required=True, type=UUID, metavar="ID...")
@click.option("--edits", help="JSON object of payload fields to change before writing (one ID only).")
@member_options
def drafts_confirm(draft_ids, edits, farm_id, user_id, dsn, data_dir) -> None:
    """Confirm drafts as a human member: each record is written in its draft's own transaction.

    Several IDs are confirmed one after the other; one that fails (already decided, expired, not in
    this farm) is reported and the others still go through; the exit code is then 1.
    """
    farm_id, user_id = need_member(farm_id, user_id)
    if edits is not None and len(draft_ids) > 1:
        raise click.UsageError("--edits applies to one draft: give one ID")
    try:
        parsed = json.loads(edits) if edits else None
    except json.JSONDecodeError as exc:
        raise click.UsageError(f"--edits is not JSON: {exc}") from exc
    if parsed is not None and not isinstance(parsed, dict):
        raise click.UsageError("--edits must be a JSON object of field -> new value")
    ids = list(dict.fromkeys(draft_ids))  # each once, in the order given
    failed: list[FarmopsError] = []
    with (
        open_client(dsn, data_dir) as client,
        client.tenant(farm_id, user_id) as t,
        progress_bar(len(ids), "confirming") as advance,
    ):
        for draft_id in ids:
            try:
                row = t.confirm_draft(draft_id, parsed)
                t.commit()
            except FarmopsError as exc:
                t.rollback()
                if len(ids) == 1:
                    raise  # one line, its DETAIL and HINT, exit 1
                failed.append(exc)
                code = f" [{exc.sqlstate}]" if exc.sqlstate else ""
                click.echo(f"farmops: {draft_id}: {type(exc).__name__}: {exc}{code}", err=True)
            else:
                click.echo(f"confirmed {row['id']} -> record {row.get('record_id')}")
            advance()
    if failed:
        click.echo(f"farmops: {len(failed)} of {len(ids)} drafts not confirmed", err=True)
        sys.exit(EXIT_REFUSED)


@drafts.command("discard")
@click.argument("draft_id", type=UUID)
@click.option("--reason", help="Why (stored on the draft).")
@member_options
def drafts_discard(draft_id, reason, farm_id, user_id, dsn, data_dir) -> None:
    """Discard a draft."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        row = t.discard_draft(draft_id, reason)
    click.echo(f"discarded {row['id']}")


WATCH_COLUMNS = ["id", "record_type", "created_by", "created_at", "expires_at", "payload"]


@drafts.command("watch")
@click.option("--count", type=POSITIVE_INT32, help="Stop after this many new drafts.")
@click.option("--timeout", type=click.FloatRange(0, 10**6), help="Stop after this many seconds.")
@click.option("--pending", is_flag=True, help="First print the drafts already pending (oldest first).")
@json_option
@member_options
def drafts_watch(count, timeout, pending, as_json, farm_id, user_id, dsn, data_dir) -> None:
    """Print each new pending draft of the farm as it is proposed (LISTEN/NOTIFY), until Ctrl-C.

    Listens on the farm's channel (farmops.draft_channel(), "farmops_drafts_<farm id>"; the
    notification carries the draft id) and reads each draft as the member, so a draft is shown
    only while --user may read the farm. Table and CSV print one line per draft, JSON one object
    per line. LISTEN needs a session: connect directly, not through PgBouncer in transaction mode.
    """
    farm_id, user_id = need_member(farm_id, user_id)
    fmt = output_format(as_json)
    deadline = None if timeout is None else time.monotonic() + timeout
    seen = 0
    with fdb.connect(resolve_dsn(dsn, data_dir), autocommit=True) as conn:
        with Session(conn, farm_id, user_id, db_role=APP_ROLE) as t:
            channel = write_path.draft_channel(t)
        with fdb.translated():
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        click.echo(f"watching {channel} for new drafts (Ctrl-C to stop)", err=True)
        if fmt == "csv":
            click.echo(",".join(WATCH_COLUMNS))
        shown: set[str] = set()
        if pending:  # read after LISTEN: a draft made meanwhile is printed once, here or below
            with Session(conn, farm_id, user_id, db_role=APP_ROLE) as t:
                backlog = write_path.drafts(t, status="pending", limit=count or 1000)
            for row in reversed(backlog):
                _print_draft(row, fmt)
                shown.add(str(row["id"]))
            seen = len(shown)
        try:
            while count is None or seen < count:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                with fdb.translated():
                    notes = list(conn.notifies(timeout=min(left or 1.0, 1.0), stop_after=1))
                for note in notes:
                    if note.payload in shown:
                        continue
                    with Session(conn, farm_id, user_id, db_role=APP_ROLE) as t:
                        row = write_path.draft(t, note.payload)
                    if row is None:  # no longer visible to this member
                        continue
                    _print_draft(row, fmt)
                    seen += 1
        except KeyboardInterrupt:
            pass


def _print_draft(row: dict, fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps(jsonable(row), ensure_ascii=False))
    elif fmt == "csv":
        click.echo(csv_text([row], WATCH_COLUMNS).split("\n", 1)[1], nl=False)
    else:
        click.echo("  ".join(cell(jsonable(row.get(c))) for c in WATCH_COLUMNS))
