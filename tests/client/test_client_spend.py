"""The money operations of the client, sync and asyncio through the same surface, as the application
login: budgets, usage, the statement, and every Titan embedding metered (ingest, search, remember, a
run's prompt)."""

from __future__ import annotations

import datetime as dt

import pytest
from support import APP_LOGIN
from support.aio import BlockingClient, EventLoopThread

import farmops_client
from farmops_client import BudgetExceeded, BudgetNotFound, ForbiddenForRole, aio
from farmops_client.embeddings import TitanEmbedder
from farmops_client.testing import FakeBedrock, fake_bedrock_client


@pytest.fixture(params=["sync", "async"])
def client(request, db):
    """The sync client or the asyncio one (driven through the sync surface), Titan on FakeBedrock."""
    fake = FakeBedrock(default=FakeBedrock.text("ok"))
    bedrock = fake_bedrock_client(fake, max_attempts=1)
    if request.param == "sync":
        c = farmops_client.connect(
            db.dsn(APP_LOGIN), bedrock=bedrock, embedder=TitanEmbedder(bedrock), max_size=2
        )
        yield c
        c.close()
        return
    runner = EventLoopThread()
    c = runner.run(
        aio.connect(db.dsn(APP_LOGIN), bedrock=bedrock, embedder=TitanEmbedder(bedrock), max_size=2)
    )
    yield BlockingClient(runner, c)
    runner.run(c.close())
    runner.close()


@pytest.fixture
def farm(client):
    farm_id = client.create_farm("Kaduna Poultry", "alice")
    with client.tenant(farm_id, "alice") as t:
        t.grant_credits(1000, "test credits")
        t.add_member("wes", "worker")
    return farm_id


def test_budgets_usage_and_statement(client, farm):
    with client.tenant(farm, "alice") as t:
        made = t.set_budget("month", 40_000_000, thresholds=[50, 100])
        assert made["limit_micro_usd"] == 40_000_000
        assert [b["period"] for b in t.budgets()] == ["month"]
    with client.tenant(farm, "wes") as t, pytest.raises(ForbiddenForRole):
        t.set_budget("day", 1)
    with client.tenant(farm, "alice") as t:
        t.ask("When is gumboro due?")
    with client.tenant(farm, "alice") as t:
        by_model = {r["model"]: r for r in t.usage(by="model")}
        mtd = t.month_to_date()
        statement = t.credit_statement(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
        assert t.adjust_credits(-1, "rounding") == statement["closing_balance"] - 1
        assert {r["model"] for r in t.rates()} >= {"*", "amazon.nova-lite-v1:0"}
        t.drop_budget("month")
        with pytest.raises(BudgetNotFound):
            t.drop_budget("month")
    assert by_model["amazon.nova-lite-v1:0"]["cost_micro_usd"] > 0
    assert by_model["amazon.titan-embed-text-v2:0"]["calls"] == 1  # the prompt's embedding, metered
    assert mtd["spent_micro_usd"] > 0 and mtd["budget_micro_usd"] == 40_000_000
    assert statement["reconciles"] is True and statement["grants"] == 1000


def test_a_budget_refuses_the_ask_before_the_model_call(client, farm):
    with client.tenant(farm, "alice") as t:
        t.set_budget("day", 1)  # one micro-dollar
    with client.tenant(farm, "alice") as t, pytest.raises(BudgetExceeded):
        t.ask("When is gumboro due?")


def test_every_titan_embedding_is_metered(client, farm, admin):
    with client.tenant(farm, "alice") as t:
        t.ingest_document("Vaccines", "Gumboro vaccine is given on day 14.\n\nNewcastle on day 21.")
    with client.tenant(farm, "alice") as t:
        t.search("gumboro")
    with client.tenant(farm, "alice") as t:
        t.remember("vaccinates on Mondays")
    with client.tenant(farm, "alice") as t:
        t.record_usage(feature="report", model="amazon.titan-embed-text-v2:0", input_tokens=1000)
    rows = admin.execute(
        "SELECT feature, model, input_tokens, cost_micro_usd FROM farmops.model_usage ORDER BY recorded_at"
    ).fetchall()
    assert [r[0] for r in rows] == ["ingest", "search", "remember", "report"]
    assert all(r[1] == "amazon.titan-embed-text-v2:0" and r[2] > 0 for r in rows)
    assert rows[-1][3] == 20  # 1000 tokens at $0.02 per 1M
