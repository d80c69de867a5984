"""Helpers for the spend-control suites (policies, approvals, rate limits), each call as a tenant."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from .calls import call, row
from .server import tenant


def set_policy(
    conn: psycopg.Connection,
    farm_id,
    name: str,
    action: str,
    decision: str,
    *,
    user: str = "alice",
    conditions: Any = None,
    **kw: Any,
) -> dict:
    """farmops.set_policy as ``user`` (default the owner) in its own tenant transaction."""
    if conditions is not None:
        kw["conditions"] = Jsonb(conditions)
    with tenant(conn, farm_id, user):
        return row(conn, "set_policy", name=name, action=action, decision=decision, **kw)


def explain(
    conn: psycopg.Connection, farm_id, action: str, attributes: Any = None, user: str = "alice"
) -> dict:
    """farmops.explain_policy as ``user``."""
    with tenant(conn, farm_id, user):
        return row(conn, "explain_policy", action=action, attributes=Jsonb(attributes or {}))


def policies(conn: psycopg.Connection, farm_id, user: str = "alice") -> list[dict]:
    """farmops.policies() as ``user``."""
    with tenant(conn, farm_id, user):
        return call(conn, "policies")


def set_limits(
    conn: psycopg.Connection,
    farm_id,
    requests=None,
    tokens=None,
    scope="farm",
    member=None,
    user: str = "alice",
) -> None:
    """farmops.set_rate_limits as ``user``."""
    with tenant(conn, farm_id, user):
        call(
            conn,
            "set_rate_limits",
            requests_per_minute=requests,
            tokens_per_minute=tokens,
            scope=scope,
            user_id=member,
        )


def reserve_run(conn: psycopg.Connection, farm_id, user: str = "alice", **kw: Any) -> dict:
    """The fused reservation (no tenant transaction), defaults feature chat, model test-model, 1 credit."""
    kw.setdefault("feature", "chat")
    kw.setdefault("model", "test-model")
    if "max_input_tokens" not in kw and "max_output_tokens" not in kw:
        kw.setdefault("credits", 1)
    return row(conn, "reserve_run", farm_id=farm_id, user_id=user, **kw)
