"""Spend control through the Python client: the typed exceptions, retry_after, and the governed run
held for approval (Bedrock faked at the HTTP layer, the database real, as the app role)."""

from __future__ import annotations

import pytest
from support import APP_LOGIN, concurrently
from support.aio import BlockingClient, EventLoopThread

import farmops_client
from farmops_client import aio, credits
from farmops_client.embeddings import TitanEmbedder
from farmops_client.errors import PolicyDenied, PolicyNotFound, RateLimited, RunAwaitsApproval
from farmops_client.testing import FakeBedrock, fake_bedrock_client

SMALL = {"max_input_tokens": 100, "max_tokens": 100}


@pytest.fixture
def fake():
    """The scripted Bedrock of this test."""
    return FakeBedrock()


@pytest.fixture
def sync_client(db, fake):
    """A library client as the app role whose Bedrock is ``fake``."""
    bedrock = fake_bedrock_client(fake, max_attempts=3)
    c = farmops_client.connect(
        db.dsn(APP_LOGIN), bedrock=bedrock, embedder=TitanEmbedder(bedrock), max_size=4
    )
    yield c
    c.close()


@pytest.fixture(params=["sync", "async"])
def client(request, db, fake):
    """The sync client, or the asyncio client driven through the same surface (support.aio)."""
    if request.param == "sync":
        yield request.getfixturevalue("sync_client")
        return
    bedrock = fake_bedrock_client(fake, max_attempts=3)
    runner = EventLoopThread()
    c = runner.run(
        aio.connect(db.dsn(APP_LOGIN), bedrock=bedrock, embedder=TitanEmbedder(bedrock), max_size=4)
    )
    yield BlockingClient(runner, c)
    runner.run(c.close())
    runner.close()


@pytest.fixture
def farm(client):
    """A farm owned by alice, 1000 credits, a manager mia and an agent bot."""
    farm_id = client.create_farm("Kaduna Poultry", "alice")
    with client.tenant(farm_id, "alice") as t:
        t.grant_credits(1000, "test credits")
        t.add_member("mia", "manager")
        t.add_member("bot", "agent")
    return farm_id


def test_ask_held_for_approval_then_approved(client, farm, fake):
    with client.tenant(farm, "alice") as t:
        t.set_policy("hold-agent", "reserve", "require_approval", member_role="agent")
        assert [p["name"] for p in t.policies()] == ["hold-agent"]
    with client.tenant(farm, "bot") as t, pytest.raises(RunAwaitsApproval) as held:
        t.ask("Hello", feature="assistant", request_id="req-1", **SMALL)
    assert held.value.rule == "hold-agent" and held.value.run_id is not None
    assert fake.seen() == []  # neither the model nor the embedder was called
    with client.tenant(farm, "mia") as t:
        assert [r["id"] for r in t.runs_awaiting_approval()] == [held.value.run_id]
        assert t.approve_run(held.value.run_id)["approval"] == "approved"
    fake.push(FakeBedrock.text("Hi.", input_tokens=10, output_tokens=5))
    with client.tenant(farm, "bot") as t:
        result = t.ask("Hello", feature="assistant", request_id="req-1", **SMALL)
    assert result.run_id == held.value.run_id and result.status == "succeeded"


def test_typed_refusals(client, farm, sync_client):
    with client.tenant(farm, "alice") as t:
        t.set_policy("no-opus", "reserve", "deny", model="opus")
        t.set_rate_limits(requests_per_minute=2, tokens_per_minute=None, scope="member", user_id="bot")
        explained = t.explain_policy("reserve", {"model": "opus"})
        assert (explained["decision"], explained["rule_name"]) == ("deny", "no-opus")
    with client.tenant(farm, "alice") as t, pytest.raises(PolicyNotFound):
        t.drop_policy("nope")  # (the error ends that session's transaction)
    with client.tenant(farm, "bot") as t, pytest.raises(PolicyDenied) as denied:
        t.ask("Hello", feature="assistant", model="opus", **SMALL)
    assert denied.value.rule == "no-opus"

    def reserve():
        with sync_client.connection() as conn:
            try:
                return credits.reserve_run(
                    conn,
                    farm_id=farm,
                    user_id="bot",
                    feature="f",
                    model="m",
                    input_tokens=10,
                    output_tokens=10,
                    request_id=None,
                    ttl="15 minutes",
                    input_summary=None,
                )
            except RateLimited as exc:
                return exc

    outcomes = concurrently([reserve for _ in range(6)])
    refused = [o for o in outcomes if isinstance(o, RateLimited)]
    assert len(refused) == 4 and all(25 <= r.retry_after <= 30 for r in refused)
    with client.tenant(farm, "alice") as t:
        limits = {(r["scope"], r["user_id"]): r for r in t.rate_limits()}
    assert limits[("member", "bot")]["requests_available"] == 0
