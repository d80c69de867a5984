"""The AI write path: drafts a human confirms, the farm's autonomy, and proposing writes.

Functions taking a :class:`~farmops_client.session.Session` run in its transaction as its
member; functions taking a connection run in the caller's (the assistant's short) transaction.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from . import db
from .arguments import uuid_arg
from .session import Session


def _jsonb(value: Any) -> Jsonb | None:
    return Jsonb(value) if value is not None else None


#: The farm's drafts (of one status, or all), newest first.
DRAFTS = (
    "SELECT * FROM farmops.assistant_drafts WHERE %(status)s::text IS NULL OR status = %(status)s "
    "ORDER BY created_at DESC LIMIT %(limit)s"
)
#: The farm's AI settings, and per record type the autonomy it resolves to now.
AUTONOMY_SETTINGS = (
    "SELECT ai_autonomy, ai_auto_categories, ai_record_autonomy, draft_ttl "
    "FROM farmops.farms WHERE id = %(farm)s"
)
AUTONOMY_TYPES = (
    "SELECT name AS record_type, class, farmops.resolve_autonomy(name) AS effective "
    "FROM farmops.record_types ORDER BY name"
)
#: The farm's recommendations (of one status, or all), newest first.
RECOMMENDATIONS = (
    "SELECT * FROM farmops.ai_recommendations WHERE %(status)s::text IS NULL OR status = %(status)s "
    "ORDER BY created_at DESC, id LIMIT %(limit)s"
)
#: Feedback and eval results (optionally of one run), newest first; the eval rules.
FEEDBACK = (
    "SELECT * FROM farmops.ai_feedback WHERE %(run)s::uuid IS NULL OR ai_run_id = %(run)s::uuid "
    "ORDER BY updated_at DESC, ai_run_id, user_id LIMIT %(limit)s"
)
EVALS = (
    "SELECT * FROM farmops.ai_evals WHERE %(run)s::uuid IS NULL OR ai_run_id = %(run)s::uuid "
    "ORDER BY created_at DESC, id DESC LIMIT %(limit)s"
)
EVAL_RULES = "SELECT * FROM farmops.ai_eval_rules ORDER BY name"


def drafts(t: Session, *, status: str | None = "pending", limit: int = 100) -> list[dict[str, Any]]:
    """The farm's assistant drafts (by default the pending ones), newest first."""
    return t.execute(DRAFTS, {"status": status, "limit": limit}).fetchall()


def draft(t: Session, draft_id: UUID | str) -> dict[str, Any] | None:
    """One draft, or ``None`` if not visible."""
    draft_id = uuid_arg(draft_id, "draft id")
    return t.execute("SELECT * FROM farmops.assistant_drafts WHERE id = %s::uuid", [str(draft_id)]).fetchone()


def confirm_draft(t: Session, draft_id: UUID | str, edits: dict[str, Any] | None = None) -> dict[str, Any]:
    """``farmops.confirm_draft`` as this (human) member; returns the draft row."""
    return t.call("confirm_draft", draft_id=uuid_arg(draft_id, "draft id"), edits=_jsonb(edits))[0]


def discard_draft(t: Session, draft_id: UUID | str, reason: str | None = None) -> dict[str, Any]:
    """``farmops.discard_draft``; returns the draft row."""
    return t.call("discard_draft", draft_id=uuid_arg(draft_id, "draft id"), reason=reason)[0]


def set_autonomy(
    t: Session,
    tier: str | None = None,
    auto_categories: list[str] | None = None,
    record_autonomy: dict[str, str] | None = None,
) -> None:
    """``farmops.set_autonomy`` (owner only); ``None`` leaves a setting unchanged."""
    t.call(
        "set_autonomy",
        tier=tier,
        auto_categories=_jsonb(auto_categories),
        record_autonomy=_jsonb(record_autonomy),
    )


def record_type_tools(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """``farmops.record_type_tools()``: one row (name, class, description, input_schema) per record type."""
    return db.call(conn, "record_type_tools")


def propose_write(
    conn: psycopg.Connection, run_id: UUID, record_type: str, payload: dict[str, Any]
) -> psycopg.Cursor[dict[str, Any]]:
    """``farmops.propose_write``: the database drafts or writes it (row: draft_id, outcome, record_id).

    Queued in the caller's (pipelined) transaction: read the returned cursor after it.
    """
    return db.send(conn, "propose_write", run_id=run_id, record_type=record_type, payload=Jsonb(payload))


def autonomy(t: Session) -> dict[str, Any]:
    """The farm's AI settings (tier, auto allow-list, per-type overrides, draft TTL) and, per record
    type, its class and the autonomy ``farmops.resolve_autonomy`` gives it now (``types``)."""
    settings = t.execute(AUTONOMY_SETTINGS, {"farm": t.farm_id}).fetchone()
    types = t.execute(AUTONOMY_TYPES).fetchall()
    return {**(settings or {}), "types": types}


def set_draft_ttl(t: Session, ttl: timedelta) -> timedelta:
    """``farmops.set_draft_ttl`` (owner only): how long new drafts wait for a human, 5 min to 30 days."""
    return t.call("set_draft_ttl", ttl=ttl)[0]["set_draft_ttl"]


def draft_channel(t: Session) -> str:
    """``farmops.draft_channel()``: the channel to LISTEN on for this farm's new pending drafts."""
    return t.call("draft_channel")[0]["draft_channel"]


def recommendations(t: Session, *, status: str | None = "pending", limit: int = 100) -> list[dict[str, Any]]:
    """The farm's AI recommendations (by default the pending ones), newest first."""
    return t.execute(RECOMMENDATIONS, {"status": status, "limit": limit}).fetchall()


def decide_recommendation(
    t: Session, recommendation_id: UUID | str, approve: bool, reason: str | None = None
) -> dict[str, Any]:
    """``farmops.decide_recommendation`` as this (human) member; returns the recommendation row."""
    return t.call(
        "decide_recommendation", recommendation_id=recommendation_id, approve=approve, reason=reason
    )[0]


def give_feedback(
    t: Session, run_id: UUID | str, thumbs_up: bool, comment: str | None = None
) -> dict[str, Any]:
    """``farmops.give_feedback``: this member's thumbs up/down on a run (a second call replaces it)."""
    return t.call("give_feedback", run_id=run_id, thumbs_up=thumbs_up, comment=comment)[0]


def feedback(t: Session, *, run_id: UUID | str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The farm's feedback on runs (optionally one run's), newest first."""
    return t.execute(FEEDBACK, {"run": run_id, "limit": limit}).fetchall()


def evals(t: Session, *, run_id: UUID | str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The farm's eval results (optionally one run's), newest first."""
    return t.execute(EVALS, {"run": run_id, "limit": limit}).fetchall()


def eval_rules(t: Session) -> list[dict[str, Any]]:
    """The installation's eval rules (global; registered by the package owner)."""
    return t.execute(EVAL_RULES).fetchall()
