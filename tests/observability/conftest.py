"""Fixtures of the observability suite: a library client on the scripted Bedrock, a funded farm, an
auditor login."""

from __future__ import annotations

import psycopg
import pytest
from support import APP_LOGIN

import farmops_client
from farmops_client.embeddings import TitanEmbedder
from farmops_client.testing import FakeBedrock, fake_bedrock_client

AUDITOR_LOGIN = "farmops_test_auditor"


@pytest.fixture
def fake():
    """The scripted Bedrock of this test."""
    return FakeBedrock()


@pytest.fixture
def client(db, fake):
    """A library client as the app login whose Bedrock (Converse and Titan) is ``fake``."""
    bedrock = fake_bedrock_client(fake, max_attempts=3)
    c = farmops_client.connect(
        db.dsn(APP_LOGIN), bedrock=bedrock, embedder=TitanEmbedder(bedrock), max_size=4
    )
    yield c
    c.close()


@pytest.fixture
def farm(client):
    """A farm owned by alice with 1000 credits, a viewer 'vic' and a worker 'wes'."""
    farm_id = client.create_farm("Kaduna Poultry", "alice")
    with client.tenant(farm_id, "alice") as t:
        t.grant_credits(1000, "test credits")
        t.add_member("vic", "viewer")
        t.add_member("wes", "worker")
    return farm_id


@pytest.fixture
def other_farm(client):
    """Bob's farm with 1000 credits."""
    farm_id = client.create_farm("Lagos Layers", "bob")
    with client.tenant(farm_id, "bob") as t:
        t.grant_credits(1000, "test credits")
    return farm_id


@pytest.fixture
def auditor(db, admin) -> psycopg.Connection:
    """A login that holds farmops_auditor only (cluster-wide role, created once), allowed to connect."""
    admin.execute(
        f"""DO $$ BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{AUDITOR_LOGIN}') THEN
                CREATE ROLE {AUDITOR_LOGIN} LOGIN IN ROLE farmops_auditor;
            END IF;
        END $$"""
    )
    admin.execute(f'GRANT CONNECT ON DATABASE "{db.dbname}" TO {AUDITOR_LOGIN}')
    conn = psycopg.connect(db.dsn(AUDITOR_LOGIN), autocommit=True)
    yield conn
    conn.close()
