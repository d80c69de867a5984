"""Money: provider prices, the dollar cost of runs and metered calls, budgets, and the finance
statement (issue 14 §3-§5). The database computes and enforces all of it; these functions call it.

Money is integer micro-dollars (``*_micro_usd``: 1 USD = 1 000 000). Functions taking a
:class:`~farmops_client.session.Session` run in its transaction as its member; functions taking a
connection run as whoever that connection is (the package owner sets prices).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from . import db
from .session import Session

MICRO = 1_000_000

#: ``usage(by=...)``: the column of ``farmops.spend_daily`` each grouping reads.
USAGE_GROUPS = {"day": "day", "feature": "feature", "model": "model", "member": "user_id"}


def dollars(micro_usd: int | None) -> str:
    """Micro-dollars as a dollar amount for people (``$7.22``; sub-cent amounts keep 4 decimals)."""
    if micro_usd is None:
        return "-"
    return (
        f"${micro_usd / MICRO:,.2f}" if micro_usd >= 10_000 or micro_usd == 0 else f"${micro_usd / MICRO:.4f}"
    )


def micro_usd(amount: str | float | int) -> int:
    """A dollar amount (``"40"``, ``"$7.50"``, ``0.25``) as integer micro-dollars."""
    text = str(amount).strip().replace("$", "", 1).replace(",", "")
    match = re.fullmatch(r"(-?)(\d+)(?:\.(\d{1,6}))?|(-?)\.(\d{1,6})", text)
    if not match:
        raise ValueError(f"not a dollar amount with at most 6 decimals: {amount!r}")
    sign = -1 if (match.group(1) or match.group(4)) else 1
    whole, frac = match.group(2) or "0", match.group(3) or match.group(5) or ""
    return sign * (int(whole) * MICRO + int((frac + "000000")[:6]))


# -- budgets ------------------------------------------------------------------------------------------------
def set_budget(
    t: Session,
    period: str,
    limit_micro_usd: int,
    *,
    action: str = "deny",
    feature: str | None = None,
    thresholds: list[int] | None = None,
    time_zone: str = "UTC",
) -> dict[str, Any]:
    """``farmops.set_budget`` (owner): the farm's money budget of a period ('day' or 'month')."""
    args: dict[str, Any] = {
        "period": period, "limit_micro_usd": limit_micro_usd, "action": action, "feature": feature,
        "time_zone": time_zone,
    }  # fmt: skip
    if thresholds is not None:
        args["thresholds"] = thresholds
    return t.call("set_budget", **args)[0]


def drop_budget(t: Session, period: str, *, feature: str | None = None) -> dict[str, Any]:
    """``farmops.drop_budget`` (owner); raises :class:`~farmops_client.errors.BudgetNotFound` if none."""
    return t.call("drop_budget", period=period, feature=feature)[0]


def budgets(t: Session) -> list[dict[str, Any]]:
    """Each budget of the farm in its current period (``farmops.budget_status``)."""
    return t.execute("SELECT * FROM farmops.budget_status ORDER BY period, feature").fetchall()


def budget_alerts(t: Session, *, limit: int = 100) -> list[dict[str, Any]]:
    """The farm's fired budget alerts, newest first."""
    return t.execute(
        "SELECT * FROM farmops.budget_alerts ORDER BY fired_at DESC LIMIT %s", [limit]
    ).fetchall()


# -- usage and cost -----------------------------------------------------------------------------------------
def usage_query(since: dt.timedelta, by: str) -> tuple[sql.Composed, dict[str, Any]]:
    """The statement of :func:`usage` (shared with the asyncio twin)."""
    if by not in USAGE_GROUPS:
        raise ValueError(f"by must be one of {sorted(USAGE_GROUPS)}")
    column = sql.Identifier(USAGE_GROUPS[by])
    query = sql.SQL(
        "SELECT {col} AS {by}, sum(calls)::bigint AS calls, sum(input_tokens)::bigint AS input_tokens,"
        " sum(output_tokens)::bigint AS output_tokens, sum(cost_micro_usd)::bigint AS cost_micro_usd,"
        " sum(credits)::bigint AS credits FROM farmops.spend_daily"
        " WHERE day >= (now() AT TIME ZONE 'UTC')::date - %(since)s::interval GROUP BY {col} ORDER BY {col}"
    ).format(col=column, by=sql.Identifier(by))
    return query, {"since": since}


def usage(
    t: Session, *, since: dt.timedelta = dt.timedelta(days=30), by: str = "day"
) -> list[dict[str, Any]]:
    """Spend of the farm over the last ``since``, grouped ``by`` day, feature, model or member."""
    query, params = usage_query(since, by)
    return t.execute(query, params).fetchall()


def month_to_date(t: Session) -> dict[str, Any] | None:
    """This month's spend, the linear end-of-month projection and the monthly budget."""
    return t.execute("SELECT * FROM farmops.spend_month_to_date").fetchone()


def record_usage(
    conn: psycopg.Connection | Session,
    *,
    feature: str,
    model: str,
    input_tokens: int,
    output_tokens: int = 0,
    run_id: UUID | str | None = None,
) -> dict[str, Any]:
    """``farmops.record_usage``: meter a provider call that is not a run's own (an embedding).

    Takes a session, or a connection inside a transaction that has the tenant context (the
    assistant's pipelined steps)."""
    args = {
        "feature": feature, "model": model, "input_tokens": input_tokens, "output_tokens": output_tokens,
        "run_id": run_id,
    }  # fmt: skip
    if isinstance(conn, Session):
        return conn.call("record_usage", **args)[0]
    return db.call(conn, "record_usage", **args)[0]


# -- prices -------------------------------------------------------------------------------------------------
#: The rate row in force for every model.
RATES_QUERY = (
    "SELECT DISTINCT ON (model) model, effective_from, input_credits_per_1k, output_credits_per_1k,"
    " input_micro_usd_per_1k, output_micro_usd_per_1k, cache_read_micro_usd_per_1k,"
    " cache_write_micro_usd_per_1k, price_source FROM farmops.model_rates WHERE effective_from <= now()"
    " ORDER BY model, effective_from DESC"
)


def rates(conn: psycopg.Connection | Session) -> list[dict[str, Any]]:
    """The rate row in force for every model (credits and prices; ``'*'`` is the default)."""
    if isinstance(conn, Session):
        return conn.execute(RATES_QUERY).fetchall()
    return db.execute(conn, RATES_QUERY).fetchall()


def set_model_price(
    conn: psycopg.Connection,
    model: str,
    input_micro_usd_per_1k: int | None,
    output_micro_usd_per_1k: int | None,
    *,
    cache_read_micro_usd_per_1k: int | None = None,
    cache_write_micro_usd_per_1k: int | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    """``farmops.set_model_price`` as the package owner (``'*'`` = the default; both None clears)."""
    return db.call(
        conn,
        "set_model_price",
        model=model,
        input_micro_usd_per_1k=input_micro_usd_per_1k,
        output_micro_usd_per_1k=output_micro_usd_per_1k,
        cache_read_micro_usd_per_1k=cache_read_micro_usd_per_1k,
        cache_write_micro_usd_per_1k=cache_write_micro_usd_per_1k,
        source=source,
    )[0]


# -- credits for finance ------------------------------------------------------------------------------------
def adjust_credits(t: Session, delta: int, reason: str) -> int:
    """``farmops.adjust_credits`` (owner): correct the balance by ``delta``; returns the new balance."""
    return t.call("adjust_credits", farm_id=t.farm_id, delta=delta, reason=reason)[0]["adjust_credits"]


def credit_statement(t: Session, start: dt.datetime, end: dt.datetime | None = None) -> dict[str, Any]:
    """``farmops.credit_statement`` for [start, end) (end: now): opening, movements, closing, reconciles."""
    args: dict[str, Any] = {"from": start}
    if end is not None:
        args["to"] = end
    return t.call("credit_statement", **args)[0]
