"""An installation from before migration 0100 starts its counters from its history, read once."""

from __future__ import annotations

import shutil

import psycopg
from support import REPO

from farmops_client import migrate as migrations
from farmops_client.tenancy import create_app_login

#: What 0100 brings, removed to make the tree as it was before it.
OBSERVABILITY_FILES = (
    "schema/0100_observability_steps_and_counters.sql",
    "functions/70_observability/metrics.sql",
    "functions/70_observability/metrics_trust_and_spend.sql",
    "functions/70_observability/run_lineage.sql",
    "functions/70_observability/run_steps.sql",
    "policies/050_observability.sql",
)


def test_upgrade_backfills_the_counters_once(empty_db, tmp_path):
    before = tmp_path / "sql"
    shutil.copytree(REPO / "sql", before)
    for name in OBSERVABILITY_FILES:
        (before / name).unlink()
    checksums = before / "schema" / "CHECKSUMS"
    checksums.write_text(
        "".join(x for x in checksums.read_text().splitlines(True) if not x.startswith("0100_"))
    )
    dsn = empty_db()
    with psycopg.connect(dsn) as conn:
        migrations.migrate(conn, root=before)
        create_app_login(conn, "farmops_test_app")
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET ROLE farmops_owner")
        conn.execute("SELECT farmops.set_model_price('*', 1000, 4000, p_source => 'test: default price')")
        farm = conn.execute("SELECT farmops.create_farm('Old farm', 'alice')").fetchone()[0]
        with conn.transaction():
            conn.execute("SELECT farmops.begin_tenant(%s, 'alice')", [farm])
            conn.execute("SELECT farmops.grant_credits(%s, 100, 'x')", [farm])
            done = conn.execute("SELECT id FROM farmops.reserve_credits('chat', 'm', 10)").fetchone()[0]
            settle = (
                "SELECT farmops.settle_run(p_run_id => %s, p_status => 'succeeded', p_credits_actual => 4)"
            )
            conn.execute(settle, [done])
            conn.execute("SELECT farmops.reserve_credits('chat', 'm', 7)")  # still live
    with psycopg.connect(dsn) as conn:
        report = migrations.migrate(conn)  # HEAD: 0100 applies
        assert report.applied == ["0100_observability_steps_and_counters.sql"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET ROLE farmops_auditor")
        rows = conn.execute("SELECT name, labels, value FROM farmops.metrics()").fetchall()
    got = {(name, labels.get("status", labels.get("kind", ""))): value for name, labels, value in rows}
    assert got[("farmops_runs_total", "succeeded")] == 1
    assert got[("farmops_credits_charged_total", "")] == 4
    assert got[("farmops_credits_refunded_total", "")] == 6
    assert got[("farmops_credits_held", "")] == 7
    assert got[("farmops_credits_reserved_total", "")] == 17  # 10 closed + 7 held
    assert got[("farmops_runs_live", "reserved")] == 1
