"""AI runs: list them, show one with its ledger legs, retrievals and drafts."""

from __future__ import annotations

import click

from ..errors import FarmopsError
from .base import FarmopsGroup, as_member, emit, emit_one, json_option, main, member_options
from .credits import LEDGER_COLUMNS
from .drafts import DRAFT_COLUMNS

RUN_COLUMNS = [
    "id",
    "user_id",
    "feature",
    "model",
    "status",
    "credits_reserved",
    "credits_actual",
    "reserved_at",
]


@main.group(cls=FarmopsGroup)
def runs() -> None:
    """AI runs: list them, show one with its ledger legs, retrievals and drafts."""


@runs.command("list")
@click.option("--limit", type=int, default=50, show_default=True)
@json_option
@member_options
def runs_list(limit, as_json, farm_id, user_id, dsn, data_dir) -> None:
    """The farm's most recent runs."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        rows = t.runs(limit=limit)
    emit(rows, as_json, RUN_COLUMNS, title="AI runs")


@runs.command("show")
@click.argument("run_id")
@json_option
@member_options
def runs_show(run_id, as_json, farm_id, user_id, dsn, data_dir) -> None:
    """One run with its ledger legs, retrievals and drafts (exit 1 if not visible)."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        row = t.run(run_id)
    if row is None:
        raise FarmopsError(f"no run {run_id} in this farm")
    if as_json:
        emit_one(row, True)
        return
    ledger, retrievals, drafts_ = row.pop("ledger"), row.pop("retrievals"), row.pop("drafts")
    emit_one(row, False)
    emit(ledger, False, LEDGER_COLUMNS, title="ledger legs")
    emit(retrievals, False, None, title="retrievals")
    emit(drafts_, False, DRAFT_COLUMNS, title="drafts")
