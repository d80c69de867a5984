"""Client sessions against the real server, as the application role: pool, tenant transactions, auth."""

from __future__ import annotations

import boto3
import pytest
from psycopg_pool import ConnectionPool
from support import APP_LOGIN

import farmops_client
from farmops_client import aws
from farmops_client.db import configure_connection
from farmops_client.errors import (
    DatabaseUnavailable,
    ForbiddenForRole,
    NotAMember,
    SessionBusy,
    TenantContextMissing,
)


@pytest.fixture
def client(db):
    """A library client connected as the application login role."""
    c = farmops_client.connect(db.dsn(APP_LOGIN), max_size=3)
    yield c
    c.close()


def test_connect_registers_pgvector_and_runs_as_the_app_role(client):
    with client.connection() as conn:
        assert conn.adapters.types.get("vector") is not None
        row = conn.execute(
            "SELECT current_user, r.rolsuper, r.rolbypassrls FROM pg_roles r WHERE r.rolname = current_user"
        ).fetchone()
    assert row == (APP_LOGIN, False, False)


def test_tenant_session_is_one_transaction_with_context(client):
    farm = client.create_farm("Kaduna Poultry", "alice")
    with client.tenant(farm, "alice") as t:
        assert t.farm()["name"] == "Kaduna Poultry"
        assert t.role == "owner"
        assert t.in_transaction
        txid = t.execute("SELECT txid_current() AS x").fetchone()["x"]
        assert t.execute("SELECT txid_current() AS x").fetchone()["x"] == txid
        assert [m["user_id"] for m in t.members()] == ["alice"]
    assert not t.in_transaction
    # the context ended with the transaction: the same pooled connection sees nothing now
    with client.connection() as conn:
        assert conn.execute("SELECT count(*) FROM farmops.farms").fetchone()[0] == 0


def test_session_commits_on_success_and_rolls_back_on_error(client):
    farm = client.create_farm("Farm", "alice")
    with client.tenant(farm, "alice") as t:
        t.add_member("musa", "worker")
    with pytest.raises(RuntimeError), client.tenant(farm, "alice") as t:
        t.add_member("bola", "viewer")
        raise RuntimeError("abort")
    with client.tenant(farm, "alice") as t:
        assert [m["user_id"] for m in t.members()] == ["alice", "musa"]


def test_commit_and_rollback_inside_a_session(client):
    farm = client.create_farm("Farm", "alice")
    with client.tenant(farm, "alice") as t:
        t.add_member("musa", "worker")
        t.commit()
        t.add_member("bola", "viewer")
        t.rollback()
        assert [m["user_id"] for m in t.members()] == ["alice", "musa"]


def test_typed_errors_from_sessions(client):
    farm_a = client.create_farm("A", "alice")
    farm_b = client.create_farm("B", "bob")
    with pytest.raises(NotAMember), client.tenant(farm_b, "alice") as t:
        t.members()
    with client.tenant(farm_a, "alice") as t:
        t.add_member("vic", "viewer")
    with pytest.raises(ForbiddenForRole), client.tenant(farm_a, "vic") as t:
        t.add_member("eve", "owner")
    with client.tenant(farm_a, "alice") as t:
        assert [m["user_id"] for m in t.members()] == ["alice", "vic"]
    with pytest.raises(TenantContextMissing), client.connection() as conn:
        farmops_client.db.call(conn, "require_tenant")


def test_governed_run_refuses_to_share_an_open_transaction(client):
    farm = client.create_farm("Farm", "alice")
    with client.tenant(farm, "alice") as t:
        t.members()
        with pytest.raises(SessionBusy), t.short_transaction():
            pass
        t.commit()
        with t.short_transaction() as conn:
            assert conn.execute("SELECT farmops.current_user_id()").fetchone()[0] == "alice"


def test_connect_to_an_existing_pool(db):
    pool = ConnectionPool(
        db.dsn(APP_LOGIN), kwargs={"autocommit": True}, configure=configure_connection, min_size=1, open=True
    )
    try:
        client = farmops_client.connect(pool)
        farm = client.create_farm("Pooled", "alice")
        with client.tenant(farm, "alice") as t:
            assert t.farm()["id"] == farm
        client.close()  # not ours: the pool stays open
        assert not pool.closed
    finally:
        pool.close()


def test_bad_dsn_is_database_unavailable_in_one_line():
    with pytest.raises(DatabaseUnavailable) as excinfo:
        farmops_client.connect("postgresql://nobody@/nodb?host=/nonexistent&port=1", connect_timeout=1)
    assert "\n" not in str(excinfo.value)
    with pytest.raises(ValueError):
        farmops_client.connect(None)


def dummy_session():
    """A boto3 session with fake static credentials (token signing is local)."""
    return boto3.Session(aws_access_key_id="AKIDFAKE", aws_secret_access_key="fake", region_name="eu-west-1")


def test_iam_token_is_signed_locally_and_refreshed_before_expiry():
    now = [1000.0]
    auth = aws.IamAuthToken("db.example.com", 5432, "svc", session=dummy_session(), clock=lambda: now[0])
    first = auth()
    assert first["sslmode"] == "require"
    assert first["password"].startswith("db.example.com:5432/?Action=connect&DBUser=svc")
    assert "X-Amz-Credential=AKIDFAKE" in first["password"]
    now[0] += aws.TOKEN_REFRESH_SECONDS - 1
    assert auth()["password"] == first["password"]
    assert auth.generated == 1
    now[0] += 2
    auth()
    assert auth.generated == 2


def test_iam_token_from_dsn():
    auth = aws.IamAuthToken.from_dsn(
        "postgresql://svc%40x@aurora.example:6543/farmops", session=dummy_session()
    )
    assert (auth.host, auth.port, auth.user) == ("aurora.example", 6543, "svc@x")
    with pytest.raises(ValueError):
        aws.IamAuthToken.from_dsn("postgresql:///farmops")


def test_pool_asks_the_auth_hook_for_every_new_connection(db):
    auth = aws.IamAuthToken(
        "db.example.com", 5432, APP_LOGIN, session=dummy_session(), extra={"sslmode": "disable"}
    )
    calls = []

    def hook():
        calls.append(1)
        return auth()

    client = farmops_client.connect(db.dsn(APP_LOGIN), auth=hook, min_size=2, max_size=2)
    try:
        with client.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert len(calls) >= 3  # the probe plus each pooled connection
        assert auth.generated == 1  # one token, reused while fresh
    finally:
        client.close()


def test_two_identities_are_separate_sessions(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFAKE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("FARMOPS_BEDROCK_REGION", "us-west-2")
    monkeypatch.setenv("FARMOPS_BEDROCK_ROLE_ARN", "arn:aws:iam::123456789012:role/farmops-ai")
    ids = aws.AwsIdentities.from_env()
    assert ids.db is not ids.bedrock
    assert ids.db.region_name == "us-east-1"
    assert ids.bedrock.region_name == "us-west-2"
    # the Bedrock role is assumed lazily: nothing was called yet, and the DB session is not that role
    assert ids.db.get_credentials().access_key == "AKIDFAKE"
    client = ids.bedrock_client()
    assert client.meta.region_name == "us-west-2"
    assert client.meta.config.retries["mode"] == "standard"
