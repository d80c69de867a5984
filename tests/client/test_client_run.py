"""The governed run end to end: real database as the app role, Bedrock faked only at the HTTP layer."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from support import APP_LOGIN, MAINTAINER_LOGIN, REPO, concurrently
from support.aio import BlockingClient, EventLoopThread

import farmops_client
from farmops_client import aio
from farmops_client.embeddings import TitanEmbedder
from farmops_client.errors import InsufficientCredits, ModelCallFailed
from farmops_client.testing import FakeBedrock, fake_bedrock_client

F = FakeBedrock
SALE = {"item": "broilers", "quantity": 40, "amount_kobo": 18_000_000, "buyer": "Musa"}
NOTE = {"title": "water", "body": "Pen 3 drinkers cleaned"}
SMALL = {"max_input_tokens": 100, "max_tokens": 100}  # estimate_credits -> 1 at the default rate


@pytest.fixture
def fake():
    """The scripted Bedrock of this test."""
    return FakeBedrock()


@pytest.fixture
def sync_client(db, fake):
    """A library client as the app role whose Bedrock client (Converse and Titan) is ``fake``."""
    bedrock = fake_bedrock_client(fake, max_attempts=3)
    c = farmops_client.connect(
        db.dsn(APP_LOGIN), bedrock=bedrock, embedder=TitanEmbedder(bedrock), max_size=4
    )
    yield c
    c.close()


@pytest.fixture(params=["sync", "async"])
def client(request, db, fake):
    """The sync client, or the asyncio client (farmops_client.aio) driven through the same surface:
    every behaviour test below runs against both."""
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
    """A farm owned by alice with 1000 credits and an 'agent' member."""
    farm_id = client.create_farm("Kaduna Poultry", "alice")
    with client.tenant(farm_id, "alice") as t:
        t.grant_credits(1000, "test credits")
    return farm_id


def run_row(admin, run_id):
    """The ai_runs row as the superuser sees it (inspection only)."""
    cur = admin.execute("SELECT * FROM farmops.ai_runs WHERE id = %s", [run_id])
    names = [d.name for d in cur.description]
    return dict(zip(names, cur.fetchone(), strict=True))


def legs(admin, run_id):
    """The ledger kinds of one run, in order."""
    return [
        r[0]
        for r in admin.execute(
            "SELECT kind FROM farmops.credit_ledger WHERE ai_run_id = %s ORDER BY seq", [run_id]
        )
    ]


def healthy(admin):
    """No invariant violation anywhere (checked as the package owner)."""
    admin.execute("SET ROLE farmops_owner")
    try:
        return admin.execute("SELECT * FROM farmops.check_invariants()").fetchall() == []
    finally:
        admin.execute("RESET ROLE")


def test_end_turn_succeeds_and_settles_with_provider_tokens(client, farm, fake, admin):
    fake.push(F.text("Give water first.", input_tokens=1500, output_tokens=500))
    with client.tenant(farm, "alice") as t:
        result = t.ask("How should I start the day?", feature="assistant")
        balance = t.balance()
    assert (result.status, result.stop_reason, result.text) == ("succeeded", "end_turn", "Give water first.")
    row = run_row(admin, result.run_id)
    assert row["status"] == "succeeded"
    assert (row["input_tokens"], row["output_tokens"]) == (1500, 500)
    assert row["credits_actual"] == result.credits_actual == 4  # ceil(1.5 * 1) + ceil(0.5 * 4), by the DB
    assert balance == 1000 - result.credits_charged
    assert legs(admin, result.run_id)[0] == "reserve"
    assert healthy(admin)
    (seen,) = fake.seen("Converse")
    assert seen.messages[0]["content"][0]["text"] == "How should I start the day?"
    names = {tool["toolSpec"]["name"] for tool in seen.body["toolConfig"]["tools"]}
    assert {"create_sale", "create_note", "create_mortality", "remember_fact", "search_knowledge"} <= names
    assert seen.body["inferenceConfig"]["maxTokens"] == 512
    assert len(fake.seen("InvokeModel")) == 1  # the prompt's embedding


@pytest.mark.parametrize(
    ("reason", "status"),
    [("max_tokens", "succeeded"), ("guardrail_intervened", "failed"), ("content_filtered", "failed")],
)
def test_other_stop_reasons(client, farm, fake, admin, reason, status):
    fake.push(F.text("partial", stop_reason=reason))
    with client.tenant(farm, "alice") as t:
        result = t.ask("anything")
    assert (result.status, result.stop_reason) == (status, reason)
    row = run_row(admin, result.run_id)
    assert row["status"] == status
    assert (row["error"] is None) == (status == "succeeded")
    assert row["credits_actual"] is not None and row["output_tokens"] == 5
    assert healthy(admin)


def test_tool_loop_drafts_a_sale_writes_a_note_and_reports_db_outcomes(client, farm, fake, admin):
    with client.tenant(farm, "alice") as t:
        t.set_autonomy(tier="auto", auto_categories=["note"])
    fake.push(
        F.tool_use(("create_sale", SALE), ("create_note", NOTE)),
        F.tool_use(("remember_fact", {"fact": "Musa buys broilers on Fridays"})),
        F.text("Sale drafted for your confirmation; note saved."),
    )
    with client.tenant(farm, "alice") as t:
        result = t.ask("Sold 40 broilers to Musa for 180,000 naira; pen 3 drinkers cleaned.")
    assert result.status == "succeeded"
    assert len(result.drafts) == 1 and len(result.records) == 1
    conv = fake.seen("Converse")
    assert len(conv) == 3
    sent = conv[1].tool_results()
    assert [r["content"][0]["text"].split(" (")[0] for r in sent] == ["drafted for confirmation", "written"]
    assert conv[2].tool_results()[0]["content"][0]["text"].startswith("remembered")
    with client.tenant(farm, "alice") as t:
        (draft,) = t.drafts()
        assert draft["record_type"] == "sale" and draft["status"] == "pending"
        confirmed = t.confirm_draft(draft["id"])
    assert confirmed["status"] == "confirmed"
    assert (
        admin.execute("SELECT count(*) FROM farmops.sale_records WHERE farm_id = %s", [farm]).fetchone()[0]
        == 1
    )
    assert (
        admin.execute("SELECT count(*) FROM farmops.note_records WHERE farm_id = %s", [farm]).fetchone()[0]
        == 1
    )
    # The remembered fact is retrievable by later runs.
    with client.tenant(farm, "alice") as t:
        hits = t.search("when does Musa buy broilers", source_types=["memory"])
    assert [h["content"] for h in hits] == ["Musa buys broilers on Fridays"]


def test_suggest_only_farm_refuses_and_the_model_is_told(client, farm, fake, admin):
    with client.tenant(farm, "alice") as t:
        t.set_autonomy(tier="suggest")
    fake.push(F.tool_use(("create_note", NOTE)), F.text("I could not save it."))
    with client.tenant(farm, "alice") as t:
        result = t.ask("note this")
    assert result.refused == ["create_note"] and result.drafts == [] and result.records == []
    (tool_result,) = fake.seen("Converse")[1].tool_results()
    assert tool_result == {
        "toolUseId": "tooluse_create_note_0",
        "content": [{"text": "not allowed: suggest only"}],
        "status": "error",
    }
    assert admin.execute("SELECT count(*) FROM farmops.assistant_drafts").fetchone()[0] == 0


def test_invalid_payload_goes_back_to_the_model(client, farm, fake):
    fake.push(
        F.tool_use(("create_sale", {"item": "eggs", "quantity": -1, "amount_kobo": 5})), F.text("fixed")
    )
    with client.tenant(farm, "alice") as t:
        result = t.ask("sold eggs")
    (tool_result,) = fake.seen("Converse")[1].tool_results()
    assert tool_result["status"] == "error" and tool_result["content"][0]["text"].startswith("not accepted")
    assert result.status == "succeeded" and result.drafts == []


def test_tool_turn_limit_fails_the_run(client, farm, fake, admin):
    fake.default = F.tool_use(("create_note", NOTE))
    with client.tenant(farm, "alice") as t:
        result = t.ask("loop forever", max_tool_turns=2)
    assert result.status == "failed" and "tool turn limit" in result.error
    assert len(fake.seen("Converse")) == 3
    assert run_row(admin, result.run_id)["status"] == "failed"


def test_throttling_then_success_is_retried_by_botocore(client, farm, fake, admin):
    fake.push(F.throttle(), F.unavailable(), F.text("done"))
    with client.tenant(farm, "alice") as t:
        result = t.ask("hello")
    assert result.status == "succeeded"
    assert [r.status for r in fake.seen("Converse")] == [429, 503, 200]
    assert run_row(admin, result.run_id)["output_tokens"] == 5


@pytest.mark.parametrize(
    ("turn", "code"),
    [
        (F.model_timeout(), "ModelTimeoutException"),
        (F.validation(), "ValidationException"),
        (F.access_denied(), "AccessDeniedException"),
    ],
)
def test_model_errors_fail_the_run_and_refund(client, farm, fake, admin, turn, code):
    fake.push(turn)
    with client.tenant(farm, "alice") as t, pytest.raises(ModelCallFailed) as excinfo:
        t.ask("hello")
    assert excinfo.value.code == code
    row = run_row(admin, excinfo.value.run_id)
    assert row["status"] == "failed" and code in row["error"]
    assert row["credits_actual"] == 0
    assert len(fake.seen("Converse")) == 1  # not retried
    with client.tenant(farm, "alice") as t:
        assert t.balance() == 1000
    assert healthy(admin)


def test_embedding_failure_fails_the_run_before_the_model_call(client, farm, fake, admin):
    fake.push_embed_error(F.access_denied())
    with client.tenant(farm, "alice") as t, pytest.raises(ModelCallFailed):
        t.ask("hello")
    assert fake.seen("Converse") == []
    with client.tenant(farm, "alice") as t:
        assert t.balance() == 1000


def test_cancellation_still_settles(sync_client, fake, admin):
    client = sync_client
    farm = client.create_farm("Kaduna Poultry", "alice")
    with client.tenant(farm, "alice") as t:
        t.grant_credits(1000, "test credits")

    def interrupt(_body):
        raise KeyboardInterrupt

    fake.default = interrupt
    with client.tenant(farm, "alice") as t, pytest.raises(KeyboardInterrupt):
        t.ask("hello")
    (row,) = admin.execute(
        "SELECT status, error, credits_actual, credits_reserved FROM farmops.ai_runs"
    ).fetchall()
    # interrupted during the model call, which never reported: settled at that call's held bound
    assert row[0] == "failed" and "KeyboardInterrupt" in row[1] and 0 < row[2] <= row[3]
    assert healthy(admin)


def test_insufficient_credits_before_any_model_call(client, fake, admin):
    farm = client.create_farm("Broke", "alice")
    with client.tenant(farm, "alice") as t, pytest.raises(InsufficientCredits):
        t.ask("hello")
    assert fake.seen("Converse") == []  # counting tokens is not a model call
    assert admin.execute("SELECT count(*) FROM farmops.ai_runs").fetchone()[0] == 0


def test_crash_between_reserve_and_settle_is_refunded_by_expiry(client, farm, db, admin):
    script = textwrap.dedent(
        f"""
        import os, farmops_client
        from farmops_client.testing import FakeBedrock, fake_bedrock_client
        fake = FakeBedrock(default=lambda body: os._exit(17))  # the process dies mid-call
        c = farmops_client.connect(
            {db.dsn(APP_LOGIN)!r}, bedrock=fake_bedrock_client(fake), embedder="titan"
        )
        with c.tenant({str(farm)!r}, "alice") as t:
            t.ask("hello", ttl="1 hour")
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env={**os.environ}, timeout=120)
    assert proc.returncode == 17
    (run_id, status, reserved) = admin.execute(
        "SELECT id, status, credits_reserved FROM farmops.ai_runs"
    ).fetchone()
    assert status == "running"
    with client.tenant(farm, "alice") as t:
        assert t.balance() == 1000 - reserved
    job = farmops_client.connect(db.dsn(MAINTAINER_LOGIN), max_size=1)  # the operator's job, not the app's
    assert job.expire_reservations() == 0  # not expired yet
    admin.execute("ALTER TABLE farmops.ai_runs DISABLE TRIGGER USER")  # time travel, setup only
    admin.execute(
        "UPDATE farmops.ai_runs SET reserved_at = now() - interval '2 hours',"
        " expires_at = now() - interval '1 second'"
    )
    admin.execute("ALTER TABLE farmops.ai_runs ENABLE TRIGGER USER")
    assert job.expire_reservations() == 1
    assert job.expire() == {"reservations": 0, "drafts": 0}
    job.close()
    assert run_row(admin, run_id)["status"] == "expired"
    assert legs(admin, run_id) == ["reserve", "expire_refund"]
    with client.tenant(farm, "alice") as t:
        assert t.balance() == 1000
    assert healthy(admin)


def test_twenty_threads_on_a_ten_credit_farm(client, fake, admin):
    farm = client.create_farm("Ten credits", "alice")
    with client.tenant(farm, "alice") as t:
        t.grant_credits(10, "exactly ten")
    fake.default = F.text("ok", input_tokens=10, output_tokens=5)

    def ask():
        with client.tenant(farm, "alice") as t:
            t.ask("hello", **SMALL)
        return "ok"

    results = concurrently([ask] * 20)
    outcomes = ["refused" if isinstance(r, InsufficientCredits) else r for r in results]
    assert set(outcomes) <= {"ok", "refused"}, outcomes
    charged = admin.execute(
        "SELECT count(*) FROM farmops.ai_runs WHERE farm_id = %s AND credits_actual > 0", [farm]
    ).fetchone()[0]
    assert outcomes.count("ok") + outcomes.count("refused") == 20
    assert outcomes.count("ok") <= 10 and charged <= 10
    assert outcomes.count("ok") == charged
    with client.tenant(farm, "alice") as t:
        assert t.balance() == 10 - charged >= 0
    assert healthy(admin)


def test_idempotent_request_id_reuses_the_run(client, farm, fake, admin):
    fake.push(F.text("one"), F.text("two"))
    with client.tenant(farm, "alice") as t:
        first = t.ask("hello", request_id="req-1")
    assert first.status == "succeeded"
    assert admin.execute("SELECT count(*) FROM farmops.ai_runs").fetchone()[0] == 1


def test_retrievals_are_recorded_for_the_run(client, farm, fake, admin):
    with client.tenant(farm, "alice") as t:
        t.ingest_document("Vaccines", "Gumboro vaccine is given to broilers on day 14 in drinking water.")
    fake.push(F.text("Day 14."))
    with client.tenant(farm, "alice") as t:
        result = t.ask("When is the gumboro vaccine given to broilers?")
        shown = t.run(result.run_id)
    assert result.retrievals and "Gumboro" in result.retrievals[0]["content"]
    assert len(shown["retrievals"]) == len(result.retrievals)
    assert shown["ledger"][0]["kind"] == "reserve"
    system = fake.seen("Converse")[0].body["system"][1]["text"]
    assert "Gumboro vaccine" in system


def test_a_run_that_uses_every_tool_turn_at_full_size_never_costs_more_than_it_reserved(
    client, farm, fake, admin
):
    big = {"max_input_tokens": 3000, "max_tokens": 1000}
    note = {"text": "pen 3 drinkers cleaned"}
    fake.push(
        *[F.tool_use(("create_note", note), input_tokens=3000, output_tokens=1000) for _ in range(4)],
        F.text("done", input_tokens=3000, output_tokens=1000),
    )
    with client.tenant(farm, "alice") as t:
        result = t.ask("log the cleaning", max_tool_turns=4, **big)
    assert result.status == "succeeded" and len(fake.seen("Converse")) == 5
    row = run_row(admin, result.run_id)
    assert row["credits_shortfall"] == 0
    assert 0 < row["credits_actual"] <= row["credits_reserved"]
    assert healthy(admin)
