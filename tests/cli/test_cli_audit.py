"""`farmops audit head | verify | log | seal` and `farmops erase member | farm` against the test database."""

from __future__ import annotations

import json
import time

import psycopg
import pytest
from click.testing import CliRunner
from support import create_farm, raises_sqlstate, row, tenant

from farmops_client import maintenance
from farmops_client.cli import main


@pytest.fixture
def cli(db):
    """Run the CLI against the test database (superuser DSN; the CLI acts as farmops_app or, where a
    command says so, as farmops_owner / farmops_maintainer)."""

    def _run(*args, ok=True):
        result = CliRunner().invoke(
            main, [*args, "--dsn", db.dsn()], env={"COLUMNS": "200"}, catch_exceptions=False
        )
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return _run


def test_head_then_verify_with_the_trusted_head(cli, admin):
    farm = cli("farm", "create", "A", "--owner", "alice").output.strip()
    who = ["--farm", farm, "--user", "alice"]
    cli("credits", "grant", "50", "--reason", "seed", *who)
    trusted = cli("audit", "head", *who).output.strip()
    seq, digest = trusted.split(":")
    assert seq == "2" and len(digest) == 64
    assert cli("audit", "head", "--farm", farm).output.strip() == trusted  # as the package owner
    cli("member", "add", "musa", "worker", *who)
    out = cli("audit", "verify", "--trusted-head", trusted, *who).output
    assert out.strip().endswith("intact")
    [row] = json.loads(cli("audit", "verify", "--json", *who).output)
    assert (row["head_seq"], row["broken_at_seq"]) == (3, None)
    log = json.loads(cli("audit", "log", "--json", *who).output)
    assert [e["action"] for e in log] == ["member.added", "ledger.grant", "member.added"]
    assert log[0]["actor_user"] == "alice" and log[1]["actor_user"] == "alice"
    # A rewritten history no longer extends the head: exit 1.
    admin.execute("ALTER TABLE farmops.audit_log DISABLE TRIGGER audit_log_is_append_only")
    admin.execute(
        "UPDATE farmops.audit_log SET hash = repeat('a', 64) WHERE farm_id = %s AND seq = 2", [farm]
    )
    admin.execute("ALTER TABLE farmops.audit_log ENABLE ALWAYS TRIGGER audit_log_is_append_only")
    broken = cli("audit", "verify", "--trusted-head", trusted, *who, ok=False)
    assert broken.exit_code == 1 and "1 broken" in broken.output


def test_a_malformed_trusted_head_is_refused_before_connecting(cli):
    farm = "00000000-0000-0000-0000-000000000001"
    result = cli("audit", "verify", "--trusted-head", "12-abc", "--farm", farm, "--user", "y", ok=False)
    assert result.exit_code == 2 and "SEQ:HASH" in result.output


def test_seal_and_erase(cli, admin):
    farm = cli("farm", "create", "A", "--owner", "alice").output.strip()
    who = ["--farm", farm, "--user", "alice"]
    cli("member", "add", "musa", "worker", *who)
    sealed = cli("audit", "seal").output
    newer = admin.info.server_version >= 170000  # the superuser's DSN: MAINTAIN on PostgreSQL 17+
    assert sealed.startswith("sealed ") and ("vacuumed the audit queue" in sealed) is newer
    assert ("left to autovacuum" in sealed) is not newer
    counts = json.loads(cli("erase", "member", "musa", "--json", *who).output)
    assert "subject" in counts
    members = admin.execute("SELECT count(*) FROM farmops.farm_members WHERE user_id = 'musa'").fetchone()
    assert members == (0,)
    assert json.loads(cli("erase", "farm", farm).output)["people"] == 1  # alice
    refused = cli("erase", "member", "nobody", *who, ok=False)  # alice was erased: no longer a member
    assert refused.exit_code == 1 and "OF002" in refused.output


def test_the_seal_job_commits_without_the_flush_wait_and_leaves_the_session_as_it_was(db, admin, app):
    """maintenance.seal_audit's transaction alone runs with synchronous_commit off (ADR 0018): inside an
    outer transaction the setting shows, after it the session's own is back."""
    farm = create_farm(app, "A", "alice")
    with psycopg.connect(db.dsn(), autocommit=True) as conn:
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
        with conn.transaction():
            assert maintenance.seal_audit(conn) >= 1
            assert conn.execute("SHOW synchronous_commit").fetchone() == ("off",)
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
    sealed = admin.execute("SELECT count(*) FROM farmops.audit_log WHERE farm_id = %s", [farm]).fetchone()
    assert sealed[0] >= 1
    # The head audit_head gives is durable whatever the sealer did: it takes the farm's seal lock (a
    # write), so its own commit, synchronous, flushes every commit before it.
    with tenant(app, farm, "alice"):
        assert row(app, "audit_head", farm_id=farm)["seq"] >= 1
        assert app.execute("SELECT pg_current_xact_id_if_assigned()").fetchone()[0] is not None


def vacuums_of_the_queue(admin) -> int:
    """How many times _audit_pending has been vacuumed by hand (cumulative statistics)."""
    admin.execute("SELECT pg_stat_clear_snapshot()")
    return admin.execute(
        "SELECT vacuum_count FROM pg_stat_all_tables WHERE relid = 'farmops._audit_pending'::regclass"
    ).fetchone()[0]


def test_the_maintainer_vacuums_the_audit_queue_and_nothing_else(connect, admin, app):
    """The seal job's login vacuums the queue with its own (inherited) privilege on PostgreSQL 17+; on
    an older server, in a transaction, or for the application login it does nothing and says so."""
    create_farm(app, "A", "alice")  # entries to seal
    maintainer = connect("maintainer")
    assert maintenance.seal_audit(maintainer) >= 1
    newer = maintainer.info.server_version >= 170000
    before = vacuums_of_the_queue(admin)
    assert maintenance.vacuum_audit_queue(maintainer) is newer
    assert maintainer.execute("SELECT current_user").fetchone() == ("farmops_test_maintainer",)
    if newer:
        # The backend reports its statistics when idle (at most a second later).
        deadline = time.monotonic() + 10
        while vacuums_of_the_queue(admin) == before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert vacuums_of_the_queue(admin) == before + 1
        # MAINTAIN on the queue only: no other farmops table, and no reading of the queue.
        with raises_sqlstate("42501"), maintainer.transaction():
            maintainer.execute("LOCK TABLE farmops.audit_log IN ACCESS EXCLUSIVE MODE")
        with raises_sqlstate("42501"):
            maintainer.execute("SELECT count(*) FROM farmops._audit_pending")
    # Inside a transaction VACUUM cannot run: nothing is tried.
    with maintainer.transaction():
        assert maintenance.vacuum_audit_queue(maintainer) is False
    # The application login has no such privilege.
    assert maintenance.vacuum_audit_queue(connect("app")) is False
