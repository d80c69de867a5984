"""The governed run end to end: real database as the app role, Bedrock faked only at the HTTP layer."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from dataclasses import replace

import pytest
from support import APP_LOGIN, MAINTAINER_LOGIN, REPO, concurrently
from support.aio import BlockingClient, EventLoopThread

import farmops_client
from farmops_client import aio
from farmops_client.assistant import Outcome, Tool
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


# -- right-sized reservations (issue 16 §1) -------------------------------------------------------------
def test_a_run_reserves_one_call_and_extends_before_each_further_call(client, farm, fake, admin):
    fake.push(
        F.tool_use(("create_note", NOTE), input_tokens=300, output_tokens=400),
        F.text("Noted.", input_tokens=350, output_tokens=300),
    )
    with client.tenant(farm, "alice") as t:
        result = t.ask("Note that the pen 3 drinkers were cleaned", k=0)
    row = run_row(admin, result.run_id)
    assert result.status == "succeeded" and result.model_calls == 2
    # first call's bound only: far below the (max_tool_turns + 1) calls the whole-run bound reserved
    assert row["credits_reserved"] - row["credits_extended"] < 10 and row["credits_extended"] > 0
    assert legs(admin, result.run_id)[:2] == ["reserve", "extend"]
    assert row["credits_actual"] <= row["credits_reserved"] and row["credits_shortfall"] == 0
    assert fake.seen("CountTokens")  # the bound of each call from the provider's count
    assert healthy(admin)


def test_a_refused_extension_ends_the_loop_cleanly_and_settles(client, fake, admin):
    farm = client.create_farm("Five credits", "alice")
    with client.tenant(farm, "alice") as t:
        t.grant_credits(5, "five")
    # call 1 bound: 100 in + 1000 out = 5 credits (all of them); after it reports 900 out tokens,
    # call 2 needs 8 in total: the hold cannot grow, the run stops with what it did
    fake.push(F.tool_use(("create_note", NOTE), input_tokens=20, output_tokens=900))
    with client.tenant(farm, "alice") as t:
        result = t.ask("note it", max_input_tokens=100, max_tokens=1000)
        balance = t.balance()
    assert result.credits_exhausted and result.status == "failed" and "credits exhausted" in result.error
    assert result.model_calls == 1 and len(result.records) + len(result.drafts) == 1
    assert fake.seen("Converse") and len(fake.seen("Converse")) == 1
    assert result.credits_actual == 4 and balance == 1  # 20 in + 900 out, the rest refunded
    assert healthy(admin)


#: A passage of a real chunk's size (about 1,000 characters): its context block is more than the
#: first hold's margin, so the hold must grow before the first model call.
VACCINATION = " ".join(
    [
        "Vaccinate broilers against Newcastle disease on day 7 and 21.",
        "Give the vaccine in the drinking water in the early morning, after two hours without water,",
        "so that every bird drinks within two hours; add skimmed milk powder to the water first to",
        "protect the live virus from chlorine. Clean the drinkers without disinfectant the day before.",
    ]
    * 3
)
PHONE = "0803 123 4567"


def answer_reporting_the_count(admin, farm, held):
    """A Converse answer that reports the request's input tokens as the fake's CountTokens counts
    them (one per four bytes of its JSON) after noting the running run's hold and that count's
    price at the moment the model is called."""

    def answer(body):
        sent = {k: body[k] for k in ("messages", "system", "toolConfig") if k in body}
        count = -(-len(json.dumps(sent, ensure_ascii=False, separators=(",", ":")).encode()) // 4)
        held.append(
            admin.execute(
                "SELECT r.credits_reserved, farmops.estimate_credits(r.model, %s, %s) "
                "FROM farmops.ai_runs AS r WHERE r.farm_id = %s AND r.status = 'running'",
                [count, body["inferenceConfig"]["maxTokens"], farm],
            ).fetchone()
        )
        return F.text("On day 7 and 21.", input_tokens=count, output_tokens=5)

    return answer


def test_the_hold_grows_for_the_passages_in_the_retrieval_step_before_the_model_is_called(
    client, farm, fake, admin, owner
):
    owner.execute("SELECT farmops.set_model_rate('per-token', 1000, 1000)")  # a credit a token
    with client.tenant(farm, "alice") as t:
        t.grant_credits(100_000, "for a credit a token")
        t.ingest_document("Vaccination", VACCINATION)
    held: list = []
    fake.default = answer_reporting_the_count(admin, farm, held)
    with client.tenant(farm, "alice") as t:
        result = t.ask(f"When do I vaccinate broilers? Call me on {PHONE}", model="per-token")
    assert result.status == "succeeded" and [p["content"] for p in result.retrievals] == [VACCINATION]
    ((hold, price),) = held
    assert hold >= price  # the request the model was sent, passages and all, was paid for first
    assert result.credits_shortfall == 0 and result.credits_actual <= result.credits_reserved == hold
    # the one extension was written in the retrieval's transaction (no round trip of its own)
    assert legs(admin, result.run_id)[:2] == ["reserve", "extend"]
    extended_at = admin.execute(
        "SELECT created_at FROM farmops.credit_ledger WHERE ai_run_id = %s AND kind = 'extend'",
        [result.run_id],
    ).fetchall()
    retrieved_at = admin.execute(
        "SELECT DISTINCT retrieved_at FROM farmops.ai_run_retrievals WHERE ai_run_id = %s", [result.run_id]
    ).fetchall()
    assert extended_at == retrieved_at and len(extended_at) == 1
    for request in fake.seen():  # no unredacted text went to Bedrock (CountTokens, Converse, embeddings)
        assert PHONE not in json.dumps(request.body)
    assert VACCINATION in json.dumps(fake.seen("Converse")[0].body["system"])
    assert healthy(admin)


def counted_need(fake, admin, max_tokens=512):
    """The price of the hold the client's cover check asks for from the provider's count of the
    last request counted (its CountTokens, plus the client's 10% and 64 tokens of margin)."""
    body = fake.seen("CountTokens")[-1].body["input"]
    count = -(-len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()) // 4)
    return admin.execute(
        "SELECT farmops.estimate_credits('per-token', %s, %s)", [count + count // 10 + 64, max_tokens]
    ).fetchone()[0]


#: Request fields the provider counts but the byte rule of a request's text does not see: the
#: skeleton's count per byte of text is then higher than a plain one's, so the grow ahead asks
#: for more than the provider's count of the real request will.
DENSE = {"additional_model_request_fields": {"note": "x" * 4_000}}


@pytest.mark.parametrize(
    ("fields", "short"),
    [({}, 0), ({}, 1), (DENSE, 0), (DENSE, 1)],
    ids=["pays-the-counted-hold", "one-credit-short", "grow-ahead-refused", "dense-one-credit-short"],
)
def test_the_cover_check_after_the_grow_ahead_refuses_as_before(client, fake, admin, owner, fields, short):
    """A farm that pays the hold the provider's count asks for gets its answer, whether the grow in
    the retrieval step covered it, fell short, or was refused (``DENSE``: it asked for more); one
    credit less and the run is refused before any model call, with nothing charged, as without it."""
    owner.execute("SELECT farmops.set_model_rate('per-token', 1000, 1000)")  # a credit a token
    farm = client.create_farm("Tight", "alice")
    with client.tenant(farm, "alice") as t:
        t.grant_credits(100_000, "to learn the holds")
        t.ingest_document("Vaccination", VACCINATION)
    fake.push(F.text("On day 7 and 21."))
    with client.tenant(farm, "alice") as t:
        learned = t.ask("When do I vaccinate broilers?", model="per-token", **fields)
    first_hold = -admin.execute(
        "SELECT delta FROM farmops.credit_ledger WHERE ai_run_id = %s AND kind = 'reserve'", [learned.run_id]
    ).fetchone()[0]
    counted = counted_need(fake, admin)
    assert first_hold < counted <= learned.credits_reserved  # the passages needed a bigger hold
    if fields:
        assert counted < learned.credits_reserved  # the grow ahead asked for more than the count
    with client.tenant(farm, "alice") as t:
        t.adjust_credits(counted - short - t.balance(), "just the counted hold, or one credit less")
    fake.push(F.text("On day 7 and 21."))
    with client.tenant(farm, "alice") as t:
        if short:
            with pytest.raises(InsufficientCredits):
                t.ask("When do I vaccinate broilers?", model="per-token", **fields)
        else:
            result = t.ask("When do I vaccinate broilers?", model="per-token", **fields)
        balance = t.balance()
    if short:
        assert len(fake.seen("Converse")) == 1  # only the first ask's
        assert balance == counted - short  # the refused run's first hold refunded, nothing charged
        run = admin.execute(
            "SELECT status, credits_extended FROM farmops.ai_runs WHERE farm_id = %s AND id <> %s",
            [farm, learned.run_id],
        ).fetchall()
        assert run == [("failed", 0)]
    else:
        assert result.status == "succeeded" and len(fake.seen("Converse")) == 2
        assert result.credits_reserved == counted and not result.credits_exhausted
    assert healthy(admin)


def test_twenty_concurrent_tool_runs_on_ten_credits_never_overspend(client, fake, admin):
    farm = client.create_farm("Ten credits", "alice")
    with client.tenant(farm, "alice") as t:
        t.grant_credits(10, "exactly ten")

    def turn(body):  # every first call asks for a tool, every second call answers
        asked = any("toolResult" in b for m in body["messages"] for b in m.get("content", []))
        if asked:
            return F.text("done", input_tokens=400, output_tokens=100)
        return F.tool_use(("create_note", NOTE), input_tokens=300, output_tokens=200)

    fake.default = turn

    def ask():
        with client.tenant(farm, "alice") as t:
            return t.ask("note it", max_tokens=200)

    results = concurrently([ask] * 20)
    assert all(isinstance(r, (farmops_client.AskResult, InsufficientCredits)) for r in results), results
    done = [r for r in results if isinstance(r, farmops_client.AskResult)]
    assert done, "right-sizing lets some runs through"
    for r in done:
        row = run_row(admin, r.run_id)
        assert row["credits_actual"] <= row["credits_reserved"] and row["credits_shortfall"] == 0
    with client.tenant(farm, "alice") as t:
        assert t.balance() >= 0
    spent = admin.execute(
        "SELECT coalesce(sum(credits_actual), 0) FROM farmops.ai_runs WHERE farm_id = %s", [farm]
    ).fetchone()[0]
    assert spent <= 10
    assert healthy(admin)


# -- streaming (§3) ------------------------------------------------------------------------------------------
#: An answer long enough to be released in several screened segments (ask_stream, segment_chars=40).
STORY = (
    "Pen three is clean now. The drinkers were scrubbed and refilled this morning. Fresh litter went "
    "down along the north wall. The birds are eating well and none were lost today. Next check at four."
)


def test_ask_stream_yields_deltas_and_tool_outcomes_then_the_settled_run(client, farm, fake, admin):
    fake.push(
        F.tool_use(("create_note", NOTE), text="Noting it."), F.text(STORY, input_tokens=30, output_tokens=9)
    )
    with client.tenant(farm, "alice") as t:
        events = list(t.ask_stream("note it", segment_chars=40))
    deltas = [e.text for e in events if isinstance(e, farmops_client.TextDelta)]
    outcomes = [e.call for e in events if isinstance(e, farmops_client.ToolOutcome)]
    assert "".join(deltas) == "Noting it.\n" + STORY and len(deltas) > 2  # both turns, joined as the answer
    assert [c.name for c in outcomes] == ["create_note"]
    (finished,) = [e for e in events if isinstance(e, farmops_client.Finished)]
    assert events[-1] is finished and finished.result.status == "succeeded"
    assert finished.result.text == "".join(deltas) and finished.result.screening["stream"]["screens"] >= 2
    row = run_row(admin, finished.result.run_id)
    assert (row["input_tokens"], row["output_tokens"]) == (20 + 30, 15 + 9)  # from the streams' metadata
    assert [r.operation for r in fake.seen() if r.operation.startswith("Converse")] == ["ConverseStream"] * 2
    assert healthy(admin)


def test_a_stream_closed_mid_way_settles_exactly_once_at_the_held_bound(client, farm, fake, admin):
    fake.push(F.text(STORY, input_tokens=40, output_tokens=12))
    with client.tenant(farm, "alice") as t:
        events = t.ask_stream("count", max_tokens=100, segment_chars=40)
        first = next(iter(events))
        events.close()  # the consumer stops reading before the stream's final metadata
        runs = t.runs()
    assert isinstance(first, farmops_client.TextDelta)
    (run,) = runs
    assert run["status"] == "failed" and run["settled_at"] is not None
    assert 0 < run["credits_actual"] <= run["credits_reserved"]  # the call never reported: its held bound
    assert legs(admin, run["id"]).count("settle_refund") + legs(admin, run["id"]).count("settle_charge") <= 1
    assert healthy(admin)


def test_a_dropped_stream_fails_the_run_at_its_held_bound(client, farm, fake, admin):
    fake.push(replace(F.text("a b c d e f", output_tokens=6), drop_after_events=3))
    with client.tenant(farm, "alice") as t, pytest.raises(ModelCallFailed) as info:
        list(t.ask_stream("count", max_tokens=100))
    row = run_row(admin, info.value.run_id)
    assert row["status"] == "failed" and 0 < row["credits_actual"] <= row["credits_reserved"]
    assert healthy(admin)


def test_a_cancelled_async_stream_settles_exactly_once(db, fake, admin):
    fake.push(replace(F.text(STORY, output_tokens=7), event_delay=0.05))
    bedrock = fake_bedrock_client(fake)

    async def scenario():
        client = await aio.connect(
            db.dsn(APP_LOGIN), bedrock=bedrock, embedder=TitanEmbedder(bedrock), max_size=2
        )
        farm = await client.create_farm("Async", "alice")
        async with client.tenant(farm, "alice") as t:
            await t.grant_credits(100, "test")
            got = asyncio.Event()

            async def consume():
                async for event in t.ask_stream("count slowly", max_tokens=100, segment_chars=40):
                    if isinstance(event, farmops_client.TextDelta):
                        got.set()

            task = asyncio.create_task(consume())
            await got.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            runs = await t.execute("SELECT * FROM farmops.ai_runs")
        await client.close()
        return runs

    (run,) = asyncio.run(scenario())
    assert run["status"] == "failed" and "CancelledError" in run["error"]
    assert 0 < run["credits_actual"] <= run["credits_reserved"]
    assert len([k for k in legs(admin, run["id"]) if k.startswith("settle")]) <= 1  # settled once
    assert healthy(admin)


# -- no connection held during a model call (§2) ----------------------------------------------------------
def test_a_pool_of_two_serves_eight_concurrent_asks_against_a_slow_model(request, db, admin):
    inside, most = 0, 0
    lock = threading.Lock()

    def slow(_body):
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        time.sleep(1.0)
        with lock:
            inside -= 1
        return F.text("ok")

    fake = FakeBedrock(default=slow)
    bedrock = fake_bedrock_client(fake)
    sync = farmops_client.connect(
        db.dsn(APP_LOGIN), bedrock=bedrock, embedder=TitanEmbedder(bedrock), max_size=2
    )
    farm = sync.create_farm("Busy", "alice")
    with sync.tenant(farm, "alice") as t:
        t.grant_credits(1000, "test")

    def ask():
        with sync.tenant(farm, "alice") as t:
            return t.ask("hello", k=1)

    results = concurrently([ask] * 8)
    sync.close()
    assert all(isinstance(r, farmops_client.AskResult) and r.status == "succeeded" for r in results), results
    assert most == 8  # all eight model calls in flight at once on two pooled connections

    inside, most = 0, 0

    async def scenario():
        client = await aio.connect(
            db.dsn(APP_LOGIN), bedrock=bedrock, embedder=TitanEmbedder(bedrock), max_size=2
        )
        async with client.tenant(farm, "alice") as t:
            done = await asyncio.gather(*(t.ask("hello", k=1) for _ in range(8)))
        await client.close()
        return done

    results = asyncio.run(scenario())
    assert all(r.status == "succeeded" for r in results)
    assert most == 8
    assert healthy(admin)


# -- per-call options (§4) ---------------------------------------------------------------------------------
def test_per_call_tools_system_model_and_inference_config(client, farm, fake, admin):
    seen: list[dict] = []
    weather = Tool(
        "weather",
        "Today's weather at the farm.",
        {"type": "object", "properties": {"place": {"type": "string"}}},
        lambda payload: seen.append(payload) or {"forecast": "rain", "place": payload.get("place")},
    )
    fake.push(F.tool_use(("weather", {"place": "Kaduna"}), ("create_sale", SALE)), F.text("Rain today."))
    with client.tenant(farm, "alice") as t:
        result = t.ask(
            "weather?",
            tools=["note", weather],
            system="You are a weather bot.",
            model="my.model-v1",
            inference_config={"temperature": 0.1, "maxTokens": 64},
            additional_model_request_fields={"top_k": 5},
            k=0,
        )
    first = fake.seen("Converse")[0]
    assert first.model_id == "my.model-v1"
    assert [s["toolSpec"]["name"] for s in first.body["toolConfig"]["tools"]] == ["create_note", "weather"]
    assert first.body["system"] == [{"text": "You are a weather bot."}]
    assert first.body["inferenceConfig"] == {"maxTokens": 64, "temperature": 0.1}
    assert first.body["additionalModelRequestFields"] == {"top_k": 5}
    assert seen == [{"place": "Kaduna"}]
    by_name = {c.name: c for c in result.tool_calls}
    assert by_name["weather"].outcome is Outcome.HANDLED and "rain" in by_name["weather"].result
    assert by_name["create_sale"].outcome is Outcome.REJECTED  # not offered: nothing drafted
    assert result.drafts == [] and result.status == "succeeded"
    assert run_row(admin, result.run_id)["model"] == "my.model-v1"


def test_history_continues_a_conversation(client, farm, fake):
    fake.push(F.text("Hello Musa."), F.text("You said your name is Musa."))
    with client.tenant(farm, "alice") as t:
        first = t.ask("I am Musa", tools=[])
        second = t.ask("What is my name?", history=first.messages, tools=[])
    sent = fake.seen("Converse")[1].messages
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[0]["content"][0]["text"] == "I am Musa" and "toolConfig" not in fake.seen("Converse")[1].body
    assert second.text == "You said your name is Musa." and len(second.messages) == 4


def test_ingest_and_remember_redact_before_they_embed_in_both_clients(client, farm, fake, admin):
    with client.tenant(farm, "alice") as t:
        t.ingest_document("Contacts", f"The vet is Dr Ade, {PHONE}. Vaccinate on day 14.")
        memory = t.remember(f"Musa the buyer: {PHONE}")
    embedded = json.dumps([r.body for r in fake.seen("InvokeModel")])
    assert PHONE not in embedded and embedded.count("[PHONE]") == 2  # the chunk and the memory
    chunks = admin.execute("SELECT content FROM farmops.embeddings WHERE farm_id = %s", [farm]).fetchall()
    assert len(chunks) == 2 and all(PHONE not in c for (c,) in chunks)
    stored = admin.execute("SELECT content FROM farmops.memories WHERE id = %s", [memory]).fetchone()[0]
    assert stored == "Musa the buyer: [PHONE]"


# -- typed arguments (§5) -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "action",
    [
        lambda t: t.confirm_draft("not-a-uuid"),
        lambda t: t.discard_draft("x" * 10_000),
        lambda t: t.run("xyz"),
        lambda t: t.grant_credits(3_000_000_000, "too many"),
        lambda t: t.grant_credits(True, "a bool"),
        lambda t: t.ask(""),
        lambda t: t.ask("hi", max_tokens=-1),
        lambda t: t.ask("hi", k="4"),
        lambda t: t.ask("hi", history="not a list"),
        lambda t: t.ask("nul \x00 byte"),
        lambda t: t.ask("hi", inference_config=["maxTokens", 5]),
        lambda t: t.ask("hi", tools=[42]),
        lambda t: t.ask("hi", temperature=float("nan")),
        lambda t: t.ask("hi", system=42),
        lambda t: t.ask("hi", guardrail="gr-1"),
        lambda t: t.ask("hi", feature="f" * 101),
        lambda t: t.ask("hi", k=None),
        lambda t: t.ask("hi", max_input_tokens=0),
        lambda t: t.ask("hi", ttl=None),
    ],
)
def test_bad_ids_and_numbers_are_typed_errors_before_any_sql(client, farm, fake, admin, action):
    before = admin.execute("SELECT count(*) FROM farmops.ai_runs").fetchone()[0]
    with client.tenant(farm, "alice") as t, pytest.raises(farmops_client.InvalidArgument):
        action(t)
    assert admin.execute("SELECT count(*) FROM farmops.ai_runs").fetchone()[0] == before
    assert fake.seen() == []


@pytest.mark.parametrize(
    ("farm_id", "user"), [("notauuid", "alice"), (None, "alice"), (uuid.uuid4(), ""), (uuid.uuid4(), None)]
)
def test_a_session_of_a_bad_farm_or_user_is_refused_in_the_client(client, farm_id, user):
    with pytest.raises(farmops_client.InvalidArgument), client.tenant(farm_id, user):
        pass


def test_every_error_class_is_exported_from_the_package():
    from farmops_client import errors

    for name, obj in vars(errors).items():
        if isinstance(obj, type) and issubclass(obj, Exception) and obj.__module__ == errors.__name__:
            assert issubclass(obj, farmops_client.FarmopsError) and getattr(farmops_client, name) is obj
    assert (REPO / "farmops_client" / "py.typed").exists()


def test_a_model_that_cannot_count_is_bounded_by_the_estimate_and_asked_once(client, farm, fake, admin):
    fake.count_tokens = False
    fake.push(F.tool_use(("create_note", NOTE)), F.text("ok"), F.text("again"))
    with client.tenant(farm, "alice") as t:
        first = t.ask("note it")
        second = t.ask("and again")
    assert first.status == second.status == "succeeded"
    assert len(fake.seen("CountTokens")) == 1  # refused once: the client stops asking for this model
    for result in (first, second):
        row = run_row(admin, result.run_id)
        assert row["credits_actual"] <= row["credits_reserved"] and row["credits_shortfall"] == 0
    assert healthy(admin)


def test_a_connection_dropped_during_converse_settles_at_the_held_bound(client, farm, fake, admin):
    from botocore.exceptions import ConnectionClosedError

    def drop(_body):
        raise ConnectionClosedError(endpoint_url="https://bedrock-runtime.us-east-1.amazonaws.com")

    fake.default = drop
    with client.tenant(farm, "alice") as t, pytest.raises(ModelCallFailed) as info:
        t.ask("hello", k=1)
    row = run_row(admin, info.value.run_id)
    # botocore retried, then gave up; the provider may have run the call and never reported: its bound
    assert row["status"] == "failed" and "ConnectionClosedError" in row["error"]
    assert 0 < row["credits_actual"] <= row["credits_reserved"] and row["credits_shortfall"] == 0
    assert healthy(admin)


def test_ask_refuses_inside_the_sessions_transaction_before_anything_runs(sync_client, fake, admin):
    farm = sync_client.create_farm("Busy", "alice")
    with sync_client.tenant(farm, "alice") as t:
        t.grant_credits(100, "test")  # opens the session's transaction
        with pytest.raises(farmops_client.SessionBusy):
            t.ask("hello")
        with pytest.raises(farmops_client.SessionBusy):
            t.ask_stream("hello")
    assert fake.seen() == []
    assert admin.execute("SELECT count(*) FROM farmops.ai_runs").fetchone()[0] == 0


def test_the_async_client_acts_as_its_role_per_transaction_and_leaves_none_behind(db, admin):
    async def scenario():
        client = await aio.connect(db.dsn("postgres"), role="farmops_app", max_size=1, embedder="lexical")
        farm = await client.create_farm("Role", "alice")
        async with client.tenant(farm, "alice") as t:
            inside = await t.execute("SELECT current_user AS who")
            members = await t.members()
        async with client.connection() as conn:  # the same server connection, after the transactions
            cur = await conn.execute("SELECT current_user, current_setting('role')")
            after = await cur.fetchone()
        await client.close()
        return inside, members, after

    inside, members, after = asyncio.run(scenario())
    assert inside == [{"who": "farmops_app"}]  # under row level security, though the DSN is a superuser's
    assert [m["user_id"] for m in members] == ["alice"]
    assert after == ("postgres", "none")  # SET LOCAL ROLE: nothing outlived the transaction


def test_every_session_operation_works_on_both_clients(client, farm, fake, admin):
    from datetime import timedelta

    fake.push(F.tool_use(("create_sale", SALE)), F.text("Drafted the sale."))
    with client.tenant(farm, "alice") as t:
        t.add_member("wes", "worker")
        t.set_member_role("wes", "manager")
        assert {m["user_id"]: m["role"] for m in t.members()} == {"alice": "owner", "wes": "manager"}
        with pytest.raises(farmops_client.NotAMember):
            t.set_member_role("nobody", "worker")
        t.remove_member("wes")
        assert t.farm()["id"] == farm and t.balance() == 1000
        doc = t.ingest_document("Water", "Broilers drink water every morning.")
        assert [d["id"] for d in t.documents()] == [doc]
        t.delete_document(doc)
        assert t.documents() == []
        memory = t.remember("We vaccinate on Mondays")
        assert any(
            hit.get("content") == "We vaccinate on Mondays" for hit in t.search("vaccinate Mondays", k=3)
        )
        assert memory is not None
        assert t.set_draft_ttl(timedelta(hours=2)) == timedelta(hours=2)
        assert t.autonomy()["draft_ttl"] == timedelta(hours=2)
        assert t.draft_channel()
        t.commit()  # a governed run needs no open transaction in the sync session
        result = t.ask("Sold 40 broilers to Musa")
        (draft_id,) = result.drafts
        assert t.draft(draft_id)["status"] == "pending" and [d["id"] for d in t.drafts()] == [draft_id]
        assert t.discard_draft(draft_id, "a test")["status"] == "discarded"
        t.give_feedback(result.run_id, True, "useful")
        assert [f["thumbs_up"] for f in t.feedback(run_id=result.run_id)] == [True]
        assert isinstance(t.evals(run_id=result.run_id), list) and t.eval_rules()
        assert t.recommendations() == []
        assert t.ledger(run_id=result.run_id)[0]["kind"] == "reserve"
        assert t.runs()[0]["id"] == result.run_id and t.run(result.run_id)["drafts"]
        assert t.check_invariants() == []
        t.commit()
    assert healthy(admin)
