"""Shared setup for the AI write-path tests: members, runs and row counts.

Runs are made through the real credit functions (``reserve_credits``, ``start_run``,
``settle_run``, ``expire_reservations``) in tenant transactions on the connection given.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from conftest import create_farm, tenant
from credit_helpers import expire, grant, reserve, settle
from psycopg.types.json import Jsonb

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


def add_members(admin: psycopg.Connection, farm_id) -> None:
    """Give the farm a manager, worker, viewer and agent (see MEMBERS)."""
    for role, user in MEMBERS.items():
        admin.execute(
            "INSERT INTO farmops.farm_members (farm_id, user_id, role) VALUES (%s, %s, %s)",
            [farm_id, user, role],
        )


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
        with tenant(admin, farm_id, user):
            admin.execute("SELECT farmops.start_run(p_run_id => %s)", [run_id])
    elif status in ("succeeded", "failed"):
        settle(admin, farm_id, run_id, status, user=user, credits_actual=1)
    return run_id


def make_farm(
    app: psycopg.Connection, admin: psycopg.Connection, name: str = "Farm A", owner: str = "alice"
) -> Farm:
    """Create a farm through the public function, add the members and a live run."""
    farm_id = create_farm(app, name, owner)
    add_members(admin, farm_id)
    return Farm(farm_id, owner, make_run(admin, farm_id, owner=owner))


def counts(admin: psycopg.Connection) -> dict[str, int]:
    """Row counts of every write-path table (all farms)."""
    return {t: admin.execute(f"SELECT count(*) FROM farmops.{t}").fetchone()[0] for t in WRITE_TABLES}


def propose(app: psycopg.Connection, farm_id, user: str, run_id, record_type: str, payload) -> tuple:
    """Call propose_write with named arguments as ``user``; returns (draft_id, outcome, record_id)."""
    with tenant(app, farm_id, user):
        return app.execute(
            "SELECT * FROM farmops.propose_write(p_run_id => %s, p_record_type => %s, p_payload => %s)",
            [run_id, record_type, payload if payload is None else Jsonb(payload)],
        ).fetchone()


def set_autonomy(
    app: psycopg.Connection, farm_id, user: str, tier=None, categories=None, overrides=None
) -> tuple:
    """Call set_autonomy with named arguments as ``user``; returns the farms row."""
    with tenant(app, farm_id, user):
        return app.execute(
            "SELECT * FROM farmops.set_autonomy(p_tier => %s, p_auto_categories => %s,"
            " p_record_autonomy => %s)",
            [
                tier,
                None if categories is None else Jsonb(categories),
                None if overrides is None else Jsonb(overrides),
            ],
        ).fetchone()


def race(
    connect: Callable[..., psycopg.Connection],
    actions: list[Callable[[psycopg.Connection], object]],
    who: list[str] | None = None,
) -> list:
    """Run each action on its own connection (``who[i]``, default app), lined up by a barrier; results
    or exceptions, in order."""
    conns = [connect(w) for w in (who or ["app"] * len(actions))]
    barrier = threading.Barrier(len(actions))
    results: list = [None] * len(actions)

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = actions[i](conns[i])
        except Exception as exc:  # collected and asserted by the caller
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(actions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results
