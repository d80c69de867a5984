"""Trust settings of a farm: the PII it keeps, its guard rules and allow rules, what the guards did."""

from __future__ import annotations

import click

from .. import trust
from .base import FarmopsGroup, as_member, emit, json_option, main, member_options


@main.group(cls=FarmopsGroup)
def pii() -> None:
    """The farm's PII policy (which kinds it keeps) and how much was redacted."""


@pii.command("policy")
@click.option(
    "--keep", "keep", multiple=True, help="A kind to keep (repeat); with --set, replaces the policy."
)
@click.option("--set", "set_it", is_flag=True, help="Set the policy to the --keep kinds (owner only).")
@json_option
@member_options
def pii_policy(keep, set_it, as_json, farm_id, user_id, dsn, data_dir) -> None:
    """Show the farm's PII policy, or set it (--set [--keep KIND ...]; no --keep = redact every kind)."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        if set_it:
            t.set_pii_policy(list(keep))
        row = t.pii_policy()
    emit([row], as_json, ["keep_kinds", "updated_by", "updated_at"], title="PII policy")


@pii.command("counts")
@click.option("--days", type=int, default=30, show_default=True)
@json_option
@member_options
def pii_counts(days, as_json, farm_id, user_id, dsn, data_dir) -> None:
    """PII findings redacted per day and kind (never the values)."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        rows = trust.pii_finding_counts(t.begin(), days)
    emit(rows, as_json, ["day", "kind", "findings"], title="PII findings")


@main.group(cls=FarmopsGroup)
def guards() -> None:
    """The farm's own guard rules and allow rules (owner only), and the guard events."""


@guards.command("set")
@click.argument("name")
@click.argument("category")
@click.argument("pattern")
@click.option("--stage", "stages", multiple=True, default=("input",), show_default=True,
              type=click.Choice(trust.GUARD_STAGES), help="Where the rule applies (repeat).")  # fmt: skip
@click.option("--action", type=click.Choice(["block", "flag"]), default="block", show_default=True)
@click.option("--disabled", is_flag=True, help="Store the rule switched off.")
@member_options
def guards_set(name, category, pattern, stages, action, disabled, farm_id, user_id, dsn, data_dir) -> None:
    """Add or replace (by NAME) a guard rule: PATTERN is a PostgreSQL regex over normalised text."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        click.echo(
            t.set_guard_rule(name, category, list(stages), pattern, action=action, enabled=not disabled)
        )


@guards.command("drop")
@click.argument("name")
@member_options
def guards_drop(name, farm_id, user_id, dsn, data_dir) -> None:
    """Delete the farm's guard rule NAME."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        t.drop_guard_rule(name)


@guards.command("allow")
@click.argument("pattern")
@click.option("--reason", required=True, help="Why this is a false positive.")
@click.option("--category", help="The category it relaxes.")
@click.option("--rule", "rule_name", help="The rule it relaxes (instead of a category).")
@member_options
def guards_allow(pattern, reason, category, rule_name, farm_id, user_id, dsn, data_dir) -> None:
    """An allow rule: matches of PATTERN are blanked out before one category's (or rule's) patterns run."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        click.echo(t.allow_guard_match(pattern, reason, category=category, rule_name=rule_name))


@guards.command("list")
@json_option
@member_options
def guards_list(as_json, farm_id, user_id, dsn, data_dir) -> None:
    """The farm's own guard rules."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        rows = t.execute(
            "SELECT name, category, stages, action, enabled, pattern "
            "FROM farmops.farm_guard_rules ORDER BY name"
        ).fetchall()
    emit(rows, as_json, title="guard rules")


@guards.command("events")
@click.option("--limit", type=int, default=50, show_default=True)
@json_option
@member_options
def guards_events(limit, as_json, farm_id, user_id, dsn, data_dir) -> None:
    """What the guards did, newest first: refused inputs, replaced outputs, guardrail interventions."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        rows = t.execute(
            "SELECT created_at, stage, source, outcome, categories, rule_names, ai_run_id, user_id "
            "FROM farmops.guard_events ORDER BY created_at DESC LIMIT %s",
            [max(1, min(limit, 10000))],
        ).fetchall()
    emit(rows, as_json, title="guard events")
