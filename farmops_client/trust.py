"""Trust: PII redaction and the injection / output guards, both decided by the database.

Both functions run with or without a tenant context: without one, ``check_text`` applies the global
guard rules; inside a tenant's transaction, also that farm's own rules and allow rules.
"""

from __future__ import annotations

from typing import Any

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
