"""Shared setup for the AI write-path tests: members, runs and row counts.

Runs are made through the real credit functions (``reserve_credits``, ``start_run``,
``settle_run``, ``expire_reservations``) in tenant transactions on the connection given.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg.types.json import Jsonb

from .calls import call, row
from .credits import add_member, expire, grant, reserve, settle, start
from .server import create_farm, tenant

#: Members added to every write-path farm besides its owner, by role.
MEMBERS = {"manager": "mia", "worker": "wes", "viewer": "vic", "agent": "bot"}

#: Every table the write path can write, for "nothing was stored" checks.
WRITE_TABLES = (
    "assistant_drafts",
    "autonomy_changes",
    "mortality_records",
    "feed_use_records",
    "sale_records",
    "expense_records",
    "water_records",
    "weight_records",
    "symptom_records",
    "note_records",
    "task_records",
    "ai_recommendations",
    "ai_evals",
    "ai_feedback",
    "memories",
)

#: One valid payload per seeded record type, and the table it lands in.
VALID = {
    "mortality": ({"count": 3, "cause": "heat stress", "flock": "Pen 2"}, "mortality_records"),
    "feed_use": ({"feed_type": "starter mash", "quantity_kg": 12.5}, "feed_use_records"),
    "sale": (
        {"item": "crates of eggs", "quantity": 10, "amount_kobo": 4_500_000, "buyer": "Mama Ngozi"},
        "sale_records",
    ),
    "expense": (
        {"category": "veterinary", "amount_kobo": 1_250_000, "vendor": "Dr Bello"},
        "expense_records",
    ),
    "water": ({"litres": 340.25, "flock": "Pond 3"}, "water_records"),
    "weight": ({"average_weight_grams": 1850, "sample_size": 20}, "weight_records"),
    "symptom": (
        {"symptoms": "coughing, nasal discharge", "affected_count": 4, "severity": "mild"},
        "symptom_records",
    ),
    "note": ({"title": "Nursery", "body": "Pond 3 is the nursery."}, "note_records"),
    "task": ({"title": "Vaccinate layers", "priority": "high"}, "task_records"),
}
ROUTINE = ("feed_use", "water", "weight", "symptom", "note", "task")
GUARDED = ("mortality", "sale", "expense")


@dataclass(frozen=True)
class Farm:
    """A farm with one member per role (owner 'alice' or 'bob') and a live run of its agent."""

    id: object
    owner: str
    run: object


def make_run(
    admin: psycopg.Connection,
    farm_id,
    *,
    status: str = "running",
    live: bool = True,
    user: str = "bot",
    owner: str = "alice",
):
    """A run made through the real credit functions: live (running), reserved, settled, expired,
    or (``live=False``) still reserved but past its deadline."""
    grant(admin, farm_id, 1, user=owner)
    if status == "expired" or not live:
        run_id = reserve(admin, farm_id, user=user, ttl="1 millisecond")["id"]
        admin.execute("SELECT pg_sleep(0.01)")
        if status == "expired":
            expire(admin)
        return run_id
    run_id = reserve(admin, farm_id, user=user)["id"]
    if status == "running":
        start(admin, farm_id, run_id, user=user)
    elif status in ("succeeded", "failed"):
        settle(admin, farm_id, run_id, status, user=user, credits_actual=1)
    return run_id


def make_farm(
    app: psycopg.Connection, admin: psycopg.Connection, name: str = "Farm A", owner: str = "alice"
) -> Farm:
    """Create a farm, its owner adds the MEMBERS, and a live run of the agent."""
    farm_id = create_farm(app, name, owner)
    for role, user in MEMBERS.items():
        add_member(app, farm_id, user, role, owner=owner)
    return Farm(farm_id, owner, make_run(admin, farm_id, owner=owner))


def counts(admin: psycopg.Connection) -> dict[str, int]:
    """Row counts of every write-path table (all farms)."""
    return {t: admin.execute(f"SELECT count(*) FROM farmops.{t}").fetchone()[0] for t in WRITE_TABLES}


def propose(app: psycopg.Connection, farm_id, user: str, run_id, record_type: str, payload) -> tuple:
    """Call propose_write as ``user``; returns (draft_id, outcome, record_id)."""
    with tenant(app, farm_id, user):
        found = row(
            app,
            "propose_write",
            run_id=run_id,
            record_type=record_type,
            payload=payload if payload is None else Jsonb(payload),
        )
    return tuple(found.values())


def set_autonomy(
    app: psycopg.Connection, farm_id, user: str, tier=None, categories=None, overrides=None
) -> tuple:
    """Call set_autonomy as ``user``; returns the farms row (a tuple, in column order)."""
    with tenant(app, farm_id, user):
        found = row(
            app,
            "set_autonomy",
            tier=tier,
            auto_categories=None if categories is None else Jsonb(categories),
            record_autonomy=None if overrides is None else Jsonb(overrides),
        )
    return tuple(found.values())


def register_wide_rule(owner: psycopg.Connection, name: str = "every_sentence") -> None:
    """As the package owner, register a regex_present rule whose pattern matches every sentence of an
    output, so that ``evaluate_run`` stores whole sentences (up to 5, 200 characters each) in details."""
    owner.execute(
        "SELECT farmops.register_eval_rule(p_name => %s, p_kind => 'regex_present',"
        " p_description => 'Quotes every sentence', p_pattern => '[^.!?]+', p_severity => 'info')",
        [name],
    )


def evaluate(app: psycopg.Connection, farm_id, user: str, run_id, output_text: str) -> dict[str, dict]:
    """Call evaluate_run as ``user``; returns its rows (as dicts) by rule name."""
    with tenant(app, farm_id, user):
        return {r["rule_name"]: r for r in call(app, "evaluate_run", run_id=run_id, output_text=output_text)}
