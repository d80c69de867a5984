"""Humans on the AI's output: feedback on runs, eval results, recommendations to decide."""

from __future__ import annotations

import click

from .base import (
    POSITIVE_INT32,
    UUID,
    FarmopsGroup,
    as_member,
    emit,
    json_option,
    main,
    member_options,
)

FEEDBACK_COLUMNS = ["ai_run_id", "user_id", "thumbs_up", "comment", "updated_at"]
EVAL_COLUMNS = ["id", "ai_run_id", "rule_name", "passed", "severity", "details", "created_at"]
RULE_COLUMNS = ["name", "kind", "severity", "enabled", "description", "pattern"]
RECOMMENDATION_COLUMNS = ["id", "title", "status", "created_by", "created_at", "decided_by", "body"]


@main.group(cls=FarmopsGroup)
def feedback() -> None:
    """Thumbs up or down on a run, and the farm's feedback."""


@feedback.command("give")
@click.argument("run_id", type=UUID)
@click.option("--up/--down", "thumbs_up", default=None, help="Thumbs up or down (one is required).")
@click.option("--comment", help="Why (at most 4000 characters).")
@member_options
def feedback_give(run_id, thumbs_up, comment, farm_id, user_id, dsn, data_dir) -> None:
    """Give RUN_ID a thumbs up or down as --user (a second call replaces the first)."""
    if thumbs_up is None:
        raise click.UsageError("give --up or --down")
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        row = t.give_feedback(run_id, thumbs_up, comment)
    click.echo(f"{'up' if row['thumbs_up'] else 'down'} on run {row['ai_run_id']} by {row['user_id']}")


@feedback.command("list")
@click.option("--run", "run_id", type=UUID, help="Only this run's feedback.")
@click.option("--limit", type=POSITIVE_INT32, default=100, show_default=True)
@json_option
@member_options
def feedback_list(run_id, limit, as_json, farm_id, user_id, dsn, data_dir) -> None:
    """The farm's feedback, newest first."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        rows = t.feedback(run_id=run_id, limit=limit)
    emit(rows, as_json, FEEDBACK_COLUMNS, title="feedback")


@main.group(cls=FarmopsGroup)
def evals() -> None:
    """The rule-based evals of the assistant's runs: results and the rules."""


@evals.command("list")
@click.option("--run", "run_id", type=UUID, help="Only this run's results.")
@click.option("--failed", is_flag=True, help="Only the failed checks.")
@click.option("--limit", type=POSITIVE_INT32, default=100, show_default=True)
@json_option
@member_options
def evals_list(run_id, failed, limit, as_json, farm_id, user_id, dsn, data_dir) -> None:
    """The farm's eval results, newest first."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        rows = t.evals(run_id=run_id, limit=limit)
    if failed:
        rows = [r for r in rows if not r["passed"]]
    emit(rows, as_json, EVAL_COLUMNS, title="evals")


@evals.command("rules")
@json_option
@member_options
def evals_rules(as_json, farm_id, user_id, dsn, data_dir) -> None:
    """The installation's eval rules (the package owner registers them: farmops.register_eval_rule)."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        rows = t.eval_rules()
    emit(rows, as_json, RULE_COLUMNS, title="eval rules")


@main.group(cls=FarmopsGroup)
def recommendations() -> None:
    """The AI's recommendations: list them, approve or reject one."""


@recommendations.command("list")
@click.option(
    "--status",
    type=click.Choice(["pending", "approved", "rejected", "all"]),
    default="pending",
    show_default=True,
)
@click.option("--limit", type=POSITIVE_INT32, default=100, show_default=True)
@json_option
@member_options
def recommendations_list(status, limit, as_json, farm_id, user_id, dsn, data_dir) -> None:
    """The farm's recommendations, newest first."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        rows = t.recommendations(status=None if status == "all" else status, limit=limit)
    emit(rows, as_json, RECOMMENDATION_COLUMNS, title="recommendations")


@recommendations.command("decide")
@click.argument("recommendation_id", type=UUID)
@click.option("--approve/--reject", "approve", default=None, help="The decision (one is required).")
@click.option("--reason", help="Why (stored with the decision).")
@member_options
def recommendations_decide(recommendation_id, approve, reason, farm_id, user_id, dsn, data_dir) -> None:
    """Approve or reject a pending recommendation as a human member."""
    if approve is None:
        raise click.UsageError("give --approve or --reject")
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        row = t.decide_recommendation(recommendation_id, approve, reason)
    click.echo(f"{row['status']} {row['id']}")
