"""Audit chain helpers for tests: what waits for the seal, and the queue as main 4f964e6's triggers
filled it (the per-entry seal of that commit, ``tests/trust/fixtures/seal_per_entry_4f964e6.sql``,
reads only the queue: since migration 0160 the ledger's legs are sealed from the ledger itself)."""

from __future__ import annotations

import psycopg

#: A farm's legs past its mark: the ledger's share of what waits for the seal.
LEGS_PAST_THE_MARK = """
    SELECT l.* FROM farmops.credit_ledger AS l
    WHERE l.farm_id = %(farm)s AND l.seq > coalesce(
        (SELECT m.sealed_seq FROM farmops._audit_ledger_marks AS m WHERE m.farm_id = %(farm)s), 0
    )
"""


def waiting(admin: psycopg.Connection, farm) -> int:
    """How many entries of ``farm`` wait for the seal: queued ones and ledger legs past its mark."""
    return admin.execute(
        f"SELECT (SELECT count(*) FROM farmops._audit_pending WHERE farm_id = %(farm)s) "
        f"+ (SELECT count(*) FROM ({LEGS_PAST_THE_MARK}) AS l)",
        {"farm": farm},
    ).fetchone()[0]


def queue_the_legs_as_4f964e6(admin: psycopg.Connection, farm) -> int:
    """Queue ``farm``'s legs past its mark as 4f964e6's triggers did (a reservation as run.reserved of its
    run, with credits_reserved, by the run's user; any other leg as ledger.<kind> with run, delta and
    balance after), and move the mark over them. The farm's queue is rewritten in the order the seal
    links a batch (by transaction start, a leg before a queued entry of the same transaction), so that
    the per-entry seal and the set-based one link the same entries in the same order. Superuser; returns
    how many legs were queued."""
    legs = admin.execute(
        f"""
        WITH legs AS ({LEGS_PAST_THE_MARK}),
        queued AS (DELETE FROM farmops._audit_pending AS p WHERE p.farm_id = %(farm)s RETURNING p.*),
        moved AS (
            INSERT INTO farmops._audit_ledger_marks AS m (farm_id, sealed_seq)
            SELECT %(farm)s, max(l.seq) FROM legs AS l HAVING count(*) > 0
            ON CONFLICT (farm_id) DO UPDATE SET sealed_seq = excluded.sealed_seq
        ),
        entries AS (
            SELECT q.xid, q.at, q.actor, q.action, q.object_table, q.object_id, q.detail,
                1 AS source, q.id AS key
            FROM queued AS q
            UNION ALL
            SELECT '3'::xid8, l.created_at, r.user_id, 'run.reserved', 'ai_runs', r.id::text,
                jsonb_build_object('credits_reserved', r.credits_reserved - r.credits_extended), 0, l.seq
            FROM legs AS l JOIN farmops.ai_runs AS r ON r.farm_id = l.farm_id AND r.id = l.ai_run_id
            WHERE l.kind = 'reserve'
            UNION ALL
            SELECT '3'::xid8, l.created_at, l.actor, 'ledger.' || l.kind, 'credit_ledger', l.seq::text,
                jsonb_build_object('run', l.ai_run_id, 'delta', l.delta, 'balance_after', l.balance_after),
                0, l.seq
            FROM legs AS l
            WHERE l.kind <> 'reserve'
        ),
        requeued AS (
            INSERT INTO farmops._audit_pending (
                farm_id, xid, at, actor, action, object_table, object_id, detail
            )
            SELECT %(farm)s, e.xid, e.at, e.actor, e.action, e.object_table, e.object_id, e.detail
            FROM entries AS e ORDER BY e.at, e.source, e.key
        )
        SELECT count(*) FROM legs
        """,
        {"farm": farm},
    ).fetchone()[0]
    return legs
