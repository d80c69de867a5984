"""AI runs: list them, show one as its lineage tree (``--json``: the DAG of ``farmops.run_lineage``)."""

from __future__ import annotations

import json

import click

from .. import observability
from .base import FarmopsGroup, as_member, emit, json_option, jsonable, main, member_options

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
    """AI runs: list them, show one as its lineage tree."""


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
    """One run's lineage: input, guard checks, retrievals, model and tool calls, drafts, records, ledger
    legs, evals, feedback (exit 1 if not visible). ``--json`` prints the DAG."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        lineage = t.lineage(run_id)
    if as_json:
        click.echo(json.dumps(jsonable(lineage), indent=2, ensure_ascii=False))
        return
    click.echo("\n".join(observability.lineage_tree(lineage)))
