"""Trust: PII redaction and the injection / output guards, both decided by the database.

Both functions run with or without a tenant context: without one, ``check_text`` applies the global
guard rules; inside a tenant's transaction, also that farm's own rules and allow rules.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg

from . import db

#: The stages ``farmops.check_text`` knows: untrusted text only, never the system prompt.
GUARD_STAGES = ("input", "retrieved", "output")


def redact_pii(conn: psycopg.Connection, text: str) -> dict[str, Any]:
    """``farmops.redact_pii``: ``{"redacted": str, "findings": [{"kind", "start", "length"}, ...]}``."""
    return db.call(conn, "redact_pii", text=text)[0]


def check_text(conn: psycopg.Connection, text: str, stage: str) -> dict[str, Any]:
    """``farmops.check_text``: ``{"verdict": allow|flag|block, "categories": [...], "rule_names": [...]}``."""
    return db.call(conn, "check_text", text=text, stage=stage)[0]


# --- the farm's PII policy and counts (a tenant context: the caller's transaction) ----------------


def set_pii_policy(conn: psycopg.Connection, keep_kinds: list[str]) -> list[str]:
    """``farmops.set_pii_policy`` (owner only): the kinds the farm keeps; raises ``UnknownPiiKind``."""
    return db.value(conn, "set_pii_policy", {"keep_kinds": "text[]"}, keep_kinds=list(keep_kinds))


def pii_policy(conn: psycopg.Connection) -> dict[str, Any]:
    """``farmops.pii_policy``: ``{"keep_kinds": [...], "updated_by", "updated_at"}`` of the current farm."""
    return db.call(conn, "pii_policy")[0]


def redact_pii_for_farm(conn: psycopg.Connection, text: str) -> str:
    """The text with the PII the current farm does not keep redacted (``farmops.redact_pii_for_farm``).

    What the client applies to anything it is about to embed: the database refuses (``PiiNotRedacted``)
    chunks and memories that still hold such data, because a vector cannot be redacted afterwards.
    """
    return db.call(conn, "redact_pii_for_farm", text=text)[0]["redacted"]


def run_pii_findings(conn: psycopg.Connection, run_id: UUID | str) -> list[dict[str, Any]]:
    """``farmops.run_pii_findings``: ``[{"source", "kind", "findings"}]`` redacted from one run's text."""
    return db.call(conn, "run_pii_findings", run_id=run_id)


def pii_finding_counts(conn: psycopg.Connection, days: int = 30) -> list[dict[str, Any]]:
    """``farmops.pii_finding_counts``: ``[{"day", "kind", "findings"}]`` of the current farm."""
    return db.call(conn, "pii_finding_counts", days=days)


# --- the farm's guard rules (owner only) -----------------------------------------------------------


def set_guard_rule(
    conn: psycopg.Connection,
    name: str,
    category: str,
    stages: list[str],
    pattern: str,
    *,
    action: str = "block",
    enabled: bool = True,
) -> UUID:
    """``farmops.set_guard_rule``: add or replace (by name) a rule of the current farm; its id."""
    return db.value(
        conn, "set_guard_rule", {"stages": "text[]"},
        name=name, category=category, stages=list(stages), pattern=pattern, action=action, enabled=enabled,
    )  # fmt: skip


def enable_guard_rule(conn: psycopg.Connection, name: str, enabled: bool = True) -> None:
    """``farmops.enable_guard_rule``: switch one of the farm's rules on or off."""
    db.call(conn, "enable_guard_rule", name=name, enabled=enabled)


def drop_guard_rule(conn: psycopg.Connection, name: str) -> None:
    """``farmops.drop_guard_rule``: delete one of the farm's rules."""
    db.call(conn, "drop_guard_rule", name=name)


def allow_guard_match(
    conn: psycopg.Connection,
    pattern: str,
    reason: str,
    *,
    category: str | None = None,
    rule_name: str | None = None,
) -> UUID:
    """``farmops.allow_guard_match``: an allow rule for a false positive (a category or a rule); its id."""
    return db.value(
        conn, "allow_guard_match", pattern=pattern, reason=reason, category=category, rule_name=rule_name
    )


def drop_guard_allow(conn: psycopg.Connection, allow_id: UUID | str) -> None:
    """``farmops.drop_guard_allow``: delete one of the farm's allow rules."""
    db.call(conn, "drop_guard_allow", allow_id=allow_id)


# --- the governed run's screens ----------------------------------------------------------------


def screen_input(conn: psycopg.Connection, text: str) -> dict[str, Any]:
    """``farmops.screen_input``: ``{"verdict", "categories", "rule_names", "redacted", "event_id"}``.

    ``verdict == "block"``: recorded, ``redacted`` is None and the model must not be called.
    """
    return db.call(conn, "screen_input", text=text)[0]


def screen_output(conn: psycopg.Connection, run_id: UUID | str, text: str) -> dict[str, Any]:
    """``screen_output``: ``{"verdict", "categories", "rule_names", "answer"}`` (block: a refusal)."""
    return db.call(conn, "screen_output", run_id=run_id, text=text)[0]


def record_guardrail_intervention(
    conn: psycopg.Connection, run_id: UUID | str, stage: str, categories: list[str]
) -> UUID:
    """``farmops.record_guardrail_intervention``: a Bedrock Guardrail intervened on a live run."""
    return db.value(
        conn, "record_guardrail_intervention", {"categories": "text[]"},
        run_id=run_id, stage=stage, categories=list(categories),
    )  # fmt: skip
