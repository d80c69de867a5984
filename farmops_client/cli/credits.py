"""Credits: grant, balance and the append-only ledger."""

from __future__ import annotations

import click

from .base import POSITIVE_INT32, UUID, FarmopsGroup, as_member, emit, json_option, main, member_options


@main.group(cls=FarmopsGroup)
def credits() -> None:
    """Grant credits and read the balance and the append-only ledger."""


@credits.command("grant")
@click.argument("amount", type=POSITIVE_INT32)
@click.option("--reason", required=True, help="Why (stored on the ledger row).")
@member_options
def credits_grant(amount, reason, farm_id, user_id, dsn, data_dir) -> None:
    """Grant AMOUNT credits to the farm (owner only); print the new balance."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        click.echo(t.grant_credits(amount, reason))


@credits.command("balance")
@member_options
def credits_balance(farm_id, user_id, dsn, data_dir) -> None:
    """Print the farm's credit balance."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        click.echo(t.balance())


LEDGER_COLUMNS = ["seq", "kind", "delta", "balance_after", "ai_run_id", "actor", "reason", "created_at"]


@credits.command("ledger")
@click.option("--run", "run_id", type=UUID, help="Only the legs of this run.")
@click.option("--limit", type=POSITIVE_INT32, default=100, show_default=True)
@json_option
@member_options
def credits_ledger(run_id, limit, as_json, farm_id, user_id, dsn, data_dir) -> None:
    """Print the farm's ledger (oldest first)."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        rows = t.ledger(run_id=run_id, limit=limit)
    emit(rows, as_json, LEDGER_COLUMNS, title="credit ledger")
