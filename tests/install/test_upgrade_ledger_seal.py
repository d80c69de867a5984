"""Migration 0160: an installation whose legs were queued by the audit triggers moves to the ledger-sourced
seal without losing or doubling an entry. The tree before it is this one without 0160, with the seal of
main 293c352 (``fixtures/sql_before_0160``: ``audit_2_seal*.sql`` verbatim) and the two triggers that
queued every leg there (``audit_1_write_ledger_triggers.sql``, installed after this tree's
``audit_1_write.sql``)."""

from __future__ import annotations

import shutil

import psycopg
from support import REPO

from farmops_client import migrate as migrations
from farmops_client.tenancy import create_app_login

BEFORE = REPO / "tests" / "install" / "fixtures" / "sql_before_0160"
MIGRATION = "0160_trust_audit_ledger_sealed_from_the_ledger.sql"


def tree_before_0160(tmp_path):
    root = tmp_path / "sql"
    shutil.copytree(REPO / "sql", root)
    (root / "schema" / MIGRATION).unlink()
    checksums = root / "schema" / "CHECKSUMS"
    checksums.write_text(
        "".join(x for x in checksums.read_text().splitlines(True) if not x.startswith("0160_"))
    )
    for old in BEFORE.iterdir():
        shutil.copy(old, root / "functions" / "50_trust" / old.name)
    return root


def in_farm(conn, farm, sql, params=()):
    with conn.transaction():
        conn.execute("SELECT farmops.begin_tenant(%s, 'alice')", [farm])
        return conn.execute(sql, params).fetchall()


def test_queued_legs_are_sealed_once_and_new_legs_from_the_ledger(empty_db, tmp_path):
    dsn = empty_db()
    with psycopg.connect(dsn) as conn:
        migrations.migrate(conn, root=tree_before_0160(tmp_path))
        create_app_login(conn, "farmops_test_app")
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET ROLE farmops_owner")
        conn.execute("SELECT farmops.set_model_price('*', 1000, 4000, p_source => 'test: default price')")
        farms = [conn.execute("SELECT farmops.create_farm(%s, 'alice')", [n]).fetchone()[0] for n in "AB"]
        for farm in farms:
            in_farm(conn, farm, "SELECT farmops.grant_credits(%s, 100, 'x')", [farm])
        sealed_run = in_farm(conn, farms[0], "SELECT id FROM farmops.reserve_credits('chat', 'm', 10)")[0][0]
        conn.execute("SELECT farmops.seal_audit()")  # part of A's history sealed before the upgrade
        in_farm(conn, farms[0], "SELECT farmops.settle_run(%s, 'succeeded', 4)", [sealed_run])
        for farm in farms:  # and queued, not sealed, when it comes
            in_farm(conn, farm, "SELECT farmops.reserve_credits('chat', 'm', 7) FROM generate_series(1, 3)")
        queued = conn.execute("SELECT count(*) FROM farmops._audit_pending").fetchone()[0]
        assert queued == 2 + 3 * 2  # A's settle leg and status change, 3 reservations in each
    with psycopg.connect(dsn) as conn:
        assert migrations.migrate(conn).applied == [MIGRATION]
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET ROLE farmops_owner")
        marks = dict(conn.execute("SELECT farm_id, sealed_seq FROM farmops._audit_ledger_marks").fetchall())
        assert marks == dict(conn.execute("SELECT farm_id, max(seq) FROM farmops.credit_ledger GROUP BY 1"))
        triggers = conn.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgname IN ('ai_runs_reservations_are_audited', "
            "'credit_ledger_legs_are_audited')"
        ).fetchone()[0]
        assert triggers == 0
        for farm in farms:  # after the upgrade: legs only in the ledger
            in_farm(conn, farm, "SELECT farmops.reserve_credits('chat', 'm', 1) FROM generate_series(1, 2)")
        assert conn.execute("SELECT count(*) FROM farmops._audit_pending").fetchone()[0] == queued
        conn.execute("SELECT farmops.seal_audit()")
        assert conn.execute("SELECT count(*) FROM farmops._audit_pending").fetchone()[0] == 0
        for farm in farms:
            legs = conn.execute(
                "SELECT count(*) FROM farmops.credit_ledger WHERE farm_id = %s", [farm]
            ).fetchone()[0]
            entries = conn.execute(
                "SELECT count(*) FILTER (WHERE object_table = 'credit_ledger' OR action = 'run.reserved'), "
                "count(DISTINCT (object_table, object_id)) FILTER (WHERE object_table = 'credit_ledger' "
                "OR action = 'run.reserved') FROM farmops.audit_log WHERE farm_id = %s",
                [farm],
            ).fetchone()
            assert entries == (legs, legs)  # every leg once: none lost at the cut-over, none doubled
            result = conn.execute(
                "SELECT broken_at_seq, problem FROM farmops.verify_audit(%s)", [farm]
            ).fetchone()
            assert result == (None, None)
