"""Spend control: the farm's policy rules, runs held for approval, and rate limits."""

from __future__ import annotations

import json

import click

from .base import INT32, UUID, FarmopsGroup, as_member, emit, emit_one, json_option, main, member_options


def limit_value(value: str | None) -> int | None:
    """``none`` (or nothing) = no limit, else a positive integer."""
    if value is None or value.lower() == "none":
        return None
    try:
        number = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number or 'none'") from None
    if not -(2**31) <= number < 2**31:
        raise click.BadParameter(f"{value} is outside PostgreSQL's integer")
    return number


# -- policy -------------------------------------------------------------------------------------------------
@main.group(cls=FarmopsGroup)
def policy() -> None:
    """The farm's policy rules: list, set, drop, explain (and package-wide defaults, read-only here)."""


POLICY_COLUMNS = ["source", "action", "rank", "name", "decision", "explanation", "updated_by"]


@policy.command("list")
@json_option
@member_options
def policy_list(as_json, farm_id, user_id, dsn, data_dir) -> None:
    """The rules that apply to the farm, in evaluation order, each with an explanation."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        rows = t.policies()
    emit(rows, as_json, POLICY_COLUMNS, title="policies")


@policy.command("set")
@click.argument("name")
@click.option("--action", type=click.Choice(["reserve", "propose_write"]), required=True)
@click.option("--decision", type=click.Choice(["allow", "deny", "require_approval", "mask"]), required=True)
@click.option("--rank", type=INT32, default=100, show_default=True, help="Evaluation order (lower first).")
@click.option("--feature")
@click.option("--model")
@click.option("--record-type")
@click.option("--role", "member_role", help="Only members of this role.")
@click.option("--capability", help="Only members whose role holds this capability.")
@click.option(
    "--when",
    "conditions",
    default="[]",
    help='Conditions, a JSON array: [{"attribute": "credits", "op": "gte", "value": 500}].',
)
@click.option(
    "--mask", "masked_kinds", multiple=True, help="A PII kind to keep masked (decision mask; repeat)."
)
@click.option("--description")
@member_options
def policy_set(
    name, action, decision, rank, feature, model, record_type, member_role, capability, conditions,
    masked_kinds, description, farm_id, user_id, dsn, data_dir,
) -> None:  # fmt: skip
    """Create or replace the farm's rule NAME (owner only); print it."""
    try:
        parsed = json.loads(conditions)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"--when is not JSON: {exc}") from None
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        row = t.set_policy(
            name, action, decision, rank=rank, feature=feature, model=model, record_type=record_type,
            member_role=member_role, capability=capability, conditions=parsed,
            masked_kinds=list(masked_kinds) or None, description=description,
        )  # fmt: skip
    emit_one(row, False)


@policy.command("drop")
@click.argument("name")
@member_options
def policy_drop(name, farm_id, user_id, dsn, data_dir) -> None:
    """Remove the farm's rule NAME (owner only)."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        t.drop_policy(name)
    click.echo(f"dropped {name}")


@policy.command("explain")
@click.argument("action", type=click.Choice(["reserve", "propose_write"]))
@click.option(
    "--attr", "attrs", multiple=True, help="key=value (numbers as numbers), e.g. credits=500; repeat."
)
@click.option("--attributes", default="{}", help="All attributes as one JSON object.")
@json_option
@member_options
def policy_explain(action, attrs, attributes, as_json, farm_id, user_id, dsn, data_dir) -> None:
    """Which decision the rules give ACTION with these attributes, and the rule that made it."""
    try:
        values = json.loads(attributes)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"--attributes is not JSON: {exc}") from None
    for item in attrs:
        key, sep, raw = item.partition("=")
        if not sep:
            raise click.BadParameter(f"--attr {item!r} is not key=value")
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError:
            values[key] = raw
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        row = t.explain_policy(action, values)
    emit_one(row, as_json)


@policy.command("time-zone")
@click.argument("zone")
@member_options
def policy_time_zone(zone, farm_id, user_id, dsn, data_dir) -> None:
    """Set the zone in which the farm's rules read hour and weekday (owner only; IANA name)."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        click.echo(t.set_farm_time_zone(zone))


# -- approvals ----------------------------------------------------------------------------------------------
@main.group(cls=FarmopsGroup)
def approvals() -> None:
    """Runs held by a require_approval rule: list, approve, reject."""


@approvals.command("list")
@json_option
@member_options
def approvals_list(as_json, farm_id, user_id, dsn, data_dir) -> None:
    """The farm's live runs awaiting approval."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        rows = t.runs_awaiting_approval()
    columns = ["id", "user_id", "feature", "model", "credits_reserved", "approval_rule", "expires_at"]
    emit(rows, as_json, columns, title="runs awaiting approval")


@approvals.command("approve")
@click.argument("run_id", type=UUID)
@member_options
def approvals_approve(run_id, farm_id, user_id, dsn, data_dir) -> None:
    """Let the held run RUN_ID start (owner or manager, not its requester)."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        row = t.approve_run(run_id)
    click.echo(f"approved {row['id']}")


@approvals.command("reject")
@click.argument("run_id", type=UUID)
@click.option("--reason")
@member_options
def approvals_reject(run_id, reason, farm_id, user_id, dsn, data_dir) -> None:
    """Refuse the held run RUN_ID; its reservation is refunded."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        row = t.reject_run(run_id, reason)
    click.echo(f"rejected {row['id']}")


# -- limits -------------------------------------------------------------------------------------------------
@main.group(cls=FarmopsGroup)
def limits() -> None:
    """Rate limits: requests and model tokens per minute, per farm and per member."""


LIMIT_COLUMNS = [
    "scope",
    "user_id",
    "requests_per_minute",
    "tokens_per_minute",
    "requests_available",
    "tokens_available",
]


@limits.command("show")
@json_option
@member_options
def limits_show(as_json, farm_id, user_id, dsn, data_dir) -> None:
    """The farm's limits and what each admits right now."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        rows = t.rate_limits()
    emit(rows, as_json, LIMIT_COLUMNS, title="rate limits")


@limits.command("set")
@click.option("--requests", help="Requests per minute, or none.")
@click.option("--tokens", help="Model tokens per minute, or none.")
@click.option("--scope", type=click.Choice(["farm", "members", "member"]), default="farm", show_default=True)
@click.option("--member", "member_id", help="The member (with --scope member).")
@member_options
def limits_set(requests, tokens, scope, member_id, farm_id, user_id, dsn, data_dir) -> None:
    """Set the farm's, every member's, or one member's limits (owner only); omitted = no limit."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        t.set_rate_limits(
            requests_per_minute=limit_value(requests), tokens_per_minute=limit_value(tokens), scope=scope,
            user_id=member_id,
        )  # fmt: skip
        rows = t.rate_limits()
    emit(rows, False, LIMIT_COLUMNS, title="rate limits")
