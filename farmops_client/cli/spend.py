"""Money: budgets, usage and cost, provider prices, and the finance side of credits.

``farmops budget show|set|drop``, ``farmops usage``, ``farmops rates list|set`` and
``farmops credits adjust|statement``. Amounts on the command line are dollars; the database keeps
integer micro-dollars.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re

import click

from .. import spend
from .base import (
    FarmopsGroup,
    as_member,
    data_dir_option,
    dsn_option,
    emit,
    emit_one,
    json_option,
    jsonable,
    main,
    member_options,
    open_client,
    owner_transaction,
)
from .credits import credits

BUDGET_COLUMNS = [
    "period", "feature", "action", "limit", "spent", "held", "used_percent", "period_start", "period_end",
]  # fmt: skip
RATE_COLUMNS = [
    "model", "effective_from", "input_credits_per_1k", "output_credits_per_1k",
    "input_per_1m", "output_per_1m", "cache_read_per_1m", "cache_write_per_1m", "price_source",
]  # fmt: skip


def _since(text: str) -> dt.timedelta:
    """``30d``, ``12h``, ``2w`` as a timedelta (a click usage error otherwise)."""
    match = re.fullmatch(r"\s*(\d{1,5})\s*([dhw])\s*", text or "")
    if not match:
        raise click.BadParameter("use a number and d, h or w (e.g. 30d)", param_hint="--since")
    n, unit = int(match.group(1)), match.group(2)
    return {"d": dt.timedelta(days=n), "h": dt.timedelta(hours=n), "w": dt.timedelta(weeks=n)}[unit]


def _dollars_arg(value: str, hint: str) -> int:
    try:
        return spend.micro_usd(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from exc


def _per_1k(value: str | None, hint: str) -> int | None:
    """Dollars per 1M tokens as micro-dollars per 1k tokens (exact, or a usage error)."""
    if value is None:
        return None
    micro = _dollars_arg(value, hint)
    if micro % 1000:
        raise click.BadParameter("at most 3 decimals below a cent per 1M tokens", param_hint=hint)
    return micro // 1000


@main.group(cls=FarmopsGroup)
def budget() -> None:
    """The farm's money budgets (per day or month, optionally per feature)."""


@budget.command("show")
@json_option
@member_options
def budget_show(as_json, farm_id, user_id, dsn, data_dir) -> None:
    """Each budget in its current period, and this month's spend with its projection."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        rows = t.budgets()
        mtd = t.month_to_date()
    if as_json:
        click.echo(json.dumps(jsonable({"budgets": rows, "month_to_date": mtd}), indent=2))
        return
    for r in rows:
        r["limit"], r["spent"], r["held"] = (
            spend.dollars(r["limit_micro_usd"]), spend.dollars(r["spent_micro_usd"]),
            spend.dollars(r["held_micro_usd"]),
        )  # fmt: skip
    emit(rows, False, BUDGET_COLUMNS, title="budgets")
    if mtd:
        limit = f" (budget {spend.dollars(mtd['budget_micro_usd'])})" if mtd["budget_micro_usd"] else ""
        click.echo(
            f"month to date: {spend.dollars(mtd['spent_micro_usd'])}, "
            f"projected: {spend.dollars(mtd['projected_micro_usd'])}{limit}"
        )


@budget.command("set")
@click.argument("period", type=click.Choice(["day", "month"]))
@click.argument("amount")
@click.option("--feature", help="Only runs of this feature (default: every feature).")
@click.option("--action", type=click.Choice(["deny", "require_approval"]), default="deny", show_default=True)
@click.option(
    "--thresholds", default="80,90,100", show_default=True, help="Alert percentages, comma-separated."
)
@click.option("--time-zone", default="UTC", show_default=True, help="Where the period's days start.")
@json_option
@member_options
def budget_set(
    period, amount, feature, action, thresholds, time_zone, as_json, farm_id, user_id, dsn, data_dir
):
    """Set the farm's budget of PERIOD to AMOUNT dollars (owner only)."""
    limit = _dollars_arg(amount, "AMOUNT")
    try:
        levels = [int(x) for x in thresholds.split(",") if x.strip()]
    except ValueError as exc:
        raise click.BadParameter("comma-separated integers", param_hint="--thresholds") from exc
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        row = t.set_budget(
            period, limit, action=action, feature=feature, thresholds=levels, time_zone=time_zone
        )
    emit_one(row, as_json)


@budget.command("drop")
@click.argument("period", type=click.Choice(["day", "month"]))
@click.option("--feature", help="The feature's budget (default: the farm-wide one).")
@member_options
def budget_drop(period, feature, farm_id, user_id, dsn, data_dir) -> None:
    """Remove the farm's budget of PERIOD (owner only); its alerts stay."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        t.drop_budget(period, feature=feature)
    click.echo(f"dropped the {period} budget" + (f" of {feature}" if feature else ""))


@main.command("usage")
@click.option("--since", "since", default="30d", show_default=True, help="How far back: 30d, 12h, 2w.")
@click.option("--by", type=click.Choice(sorted(spend.USAGE_GROUPS)), default="day", show_default=True)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True
)
@member_options
def usage(since, by, fmt, farm_id, user_id, dsn, data_dir) -> None:
    """The farm's AI spend (runs and metered calls): calls, tokens, dollars, credits."""
    window = _since(since)
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        rows = t.usage(since=window, by=by)
    if fmt == "csv":
        out = io.StringIO()
        fields = [by, "calls", "input_tokens", "output_tokens", "cost_micro_usd", "credits"]
        writer = csv.DictWriter(out, fieldnames=fields)
        writer.writeheader()
        writer.writerows(jsonable(rows))
        click.echo(out.getvalue(), nl=False)
        return
    if fmt == "table":
        for r in rows:
            r["cost"] = spend.dollars(r["cost_micro_usd"])
    emit(
        rows, fmt == "json", [by, "calls", "input_tokens", "output_tokens", "cost", "credits"], title="usage"
    )


@main.group(cls=FarmopsGroup)
def rates() -> None:
    """Credit rates and provider prices per model (effective-dated; '*' is the default)."""


@rates.command("list")
@json_option
@dsn_option
@data_dir_option
def rates_list(as_json, dsn, data_dir) -> None:
    """The rate in force for every model."""
    with open_client(dsn, data_dir) as client, client.connection() as conn:
        rows = spend.rates(conn)
    if not as_json:
        for r in rows:
            for kind in ("input", "output", "cache_read", "cache_write"):
                micro = r.get(f"{kind}_micro_usd_per_1k")
                r[f"{kind}_per_1m"] = None if micro is None else spend.dollars(micro * 1000)
    emit(rows, as_json, None if as_json else RATE_COLUMNS, title="rates")


@rates.command("set")
@click.argument("model")
@click.option("--input", "input_", help="Dollars per 1M input tokens.")
@click.option("--output", help="Dollars per 1M output tokens.")
@click.option("--cache-read", help="Dollars per 1M prompt-cache read tokens (default: the input price).")
@click.option("--cache-write", help="Dollars per 1M prompt-cache write tokens (default: the input price).")
@click.option(
    "--clear", is_flag=True, help="Remove the model's price from now on ('*': unknown models fail)."
)
@click.option("--source", help="Where the price comes from (page, date).")
@json_option
@dsn_option
@data_dir_option
def rates_set(model, input_, output, cache_read, cache_write, clear, source, as_json, dsn, data_dir) -> None:
    """Set MODEL's price from now on (package owner: the DSN's role must be able to act as farmops_owner)."""
    if clear == (input_ is not None or output is not None):
        raise click.UsageError("give --input and --output, or --clear")
    with owner_transaction(dsn, data_dir) as conn:
        row = spend.set_model_price(
            conn,
            model,
            _per_1k(input_, "--input"),
            _per_1k(output, "--output"),
            cache_read_micro_usd_per_1k=_per_1k(cache_read, "--cache-read"),
            cache_write_micro_usd_per_1k=_per_1k(cache_write, "--cache-write"),
            source=source,
        )
    emit_one(row, as_json)


@credits.command("adjust", context_settings={"ignore_unknown_options": True})  # DELTA may be negative
@click.argument("delta", type=int)
@click.option("--reason", required=True, help="Why (stored on the ledger row).")
@member_options
def credits_adjust(delta, reason, farm_id, user_id, dsn, data_dir) -> None:
    """Correct the balance by DELTA credits, up or down (owner only); print the new balance."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        click.echo(t.adjust_credits(delta, reason))


@credits.command("statement")
@click.option("--from", "start", type=click.DateTime(), help="Start (default: the first of this month, UTC).")
@click.option("--to", "end", type=click.DateTime(), help="End, exclusive (default: now).")
@json_option
@member_options
def credits_statement(start, end, as_json, farm_id, user_id, dsn, data_dir) -> None:
    """Opening balance, grants, charges, refunds, adjustments and closing balance for a period."""
    now = dt.datetime.now(dt.UTC)
    start = (
        start.replace(tzinfo=start.tzinfo or dt.UTC)
        if start
        else now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    )
    end = end.replace(tzinfo=end.tzinfo or dt.UTC) if end else None
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        row = t.credit_statement(start, end)
    emit_one(row, as_json)
