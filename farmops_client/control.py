"""Spend control: the farm's policy rules, runs held for approval, and rate limits.

Every rule is the database's (``sql/functions/60_control/``): these functions only call it in the
session's transaction, as its member. A refusal arrives as a typed exception:
:class:`~farmops_client.errors.PolicyDenied` (``.rule``), :class:`~farmops_client.errors.RateLimited`
(``.retry_after`` seconds), :class:`~farmops_client.errors.RunAwaitsApproval`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from .session import Session

#: The actions a rule governs, the decisions it can make, the scopes of a rate limit.
ACTIONS = ("reserve", "propose_write")
DECISIONS = ("allow", "deny", "require_approval", "mask")
LIMIT_SCOPES = ("farm", "members", "member")


def policies(t: Session) -> list[dict[str, Any]]:
    """``farmops.policies()``: the rules that apply to this farm, in evaluation order, with explanations."""
    return t.call("policies")


def set_policy(
    t: Session,
    name: str,
    action: str,
    decision: str,
    *,
    rank: int = 100,
    feature: str | None = None,
    model: str | None = None,
    record_type: str | None = None,
    member_role: str | None = None,
    capability: str | None = None,
    conditions: Sequence[dict[str, Any]] = (),
    masked_kinds: Sequence[str] | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """``farmops.set_policy`` (owner): create or replace the rule ``name``; returns its row."""
    return t.call(
        "set_policy",
        name=name,
        action=action,
        decision=decision,
        rank=rank,
        feature=feature,
        model=model,
        record_type=record_type,
        member_role=member_role,
        capability=capability,
        conditions=Jsonb(list(conditions)),
        masked_kinds=None if masked_kinds is None else list(masked_kinds),
        description=description,
    )[0]


def drop_policy(t: Session, name: str) -> dict[str, Any]:
    """``farmops.drop_policy`` (owner): remove the rule ``name``; returns it (PolicyNotFound if none)."""
    return t.call("drop_policy", name=name)[0]


def explain_policy(t: Session, action: str, attributes: dict[str, Any] | None = None) -> dict[str, Any]:
    """``farmops.explain_policy``: the decision for ``action`` with ``attributes`` and its rule."""
    return t.call("explain_policy", action=action, attributes=Jsonb(attributes or {}))[0]


def set_farm_time_zone(t: Session, time_zone: str) -> str:
    """``farmops.set_farm_time_zone`` (owner): the zone in which rules read hour and weekday."""
    return t.call("set_farm_time_zone", time_zone=time_zone)[0]["set_farm_time_zone"]


def approve_run(t: Session, run_id: UUID | str) -> dict[str, Any]:
    """``farmops.approve_run`` (owner or manager, not the requester): let a held run start."""
    return t.call("approve_run", run_id=run_id)[0]


def reject_run(t: Session, run_id: UUID | str, reason: str | None = None) -> dict[str, Any]:
    """``farmops.reject_run`` (owner or manager): refuse a held run; its reservation is refunded."""
    return t.call("reject_run", run_id=run_id, reason=reason)[0]


def runs_awaiting_approval(t: Session) -> list[dict[str, Any]]:
    """The farm's live runs held by a require_approval rule, oldest first."""
    return t.execute(
        "SELECT * FROM farmops.ai_runs WHERE approval = 'pending' AND status = 'reserved' "
        "AND expires_at > now() ORDER BY reserved_at, id"
    ).fetchall()


def rate_limits(t: Session) -> list[dict[str, Any]]:
    """``farmops.rate_limits()``: the farm's, the per-member default and each limited member's, with what
    each admits right now."""
    return t.call("rate_limits")


def set_rate_limits(
    t: Session,
    *,
    requests_per_minute: int | None,
    tokens_per_minute: int | None,
    scope: str = "farm",
    user_id: str | None = None,
) -> None:
    """``farmops.set_rate_limits`` (owner): ``None`` = no limit (for one member: the per-member default)."""
    t.call(
        "set_rate_limits",
        requests_per_minute=requests_per_minute,
        tokens_per_minute=tokens_per_minute,
        scope=scope,
        user_id=user_id,
    )
