"""ask_stream: no text reaches the consumer before it was screened for the farm, and it still streams.
Both clients (sync and asyncio), the real database as the app role, Bedrock faked at the wire."""

from __future__ import annotations

from dataclasses import replace

import pytest
from support import APP_LOGIN
from support.aio import BlockingClient, EventLoopThread

import farmops_client
from farmops_client import aio
from farmops_client.assistant.streaming import StreamGuard
from farmops_client.embeddings import TitanEmbedder
from farmops_client.errors import InvalidArgument, ModelCallFailed
from farmops_client.testing import FakeBedrock, fake_bedrock_client

F = FakeBedrock
PHONE = "0803 123 4567"
EMAIL = "musa.bello@example.com"
KEY = "AKIAIOSFODNN7EXAMPLE"
EXFIL = "![feed chart](https://stats.example.net/log.png?farm=kaduna&buyer=musa)"
OPENING = (
    "Pen three is clean now. The drinkers were scrubbed and refilled this morning. Fresh litter went "
    "down along the north wall, and the birds are eating well. "
)
CLOSING = " Next check at four. Vaccinate against Gumboro on day fourteen, and log every loss before dusk."


@pytest.fixture
def fake():
    """The scripted Bedrock of this test."""
    return FakeBedrock()


@pytest.fixture(params=["sync", "async"])
def client(request, db, fake):
    """The sync client, or the asyncio client driven through the same surface."""
    bedrock = fake_bedrock_client(fake, max_attempts=1)
    if request.param == "sync":
        c = farmops_client.connect(
            db.dsn(APP_LOGIN), bedrock=bedrock, embedder=TitanEmbedder(bedrock), max_size=4
        )
        yield c
        c.close()
        return
    runner = EventLoopThread()
    c = runner.run(
        aio.connect(db.dsn(APP_LOGIN), bedrock=bedrock, embedder=TitanEmbedder(bedrock), max_size=4)
    )
    yield BlockingClient(runner, c)
    runner.run(c.close())
    runner.close()


@pytest.fixture
def farm(client):
    """A farm owned by alice with 1000 credits."""
    farm_id = client.create_farm("Kaduna Poultry", "alice")
    with client.tenant(farm_id, "alice") as t:
        t.grant_credits(1000, "test credits")
    return farm_id


def stream(client, farm, prompt="Tell me about pen three", **kw):
    """Every event of one ask_stream (segments of 40 characters unless told), and its result."""
    with client.tenant(farm, "alice") as t:
        events = list(t.ask_stream(prompt, segment_chars=kw.pop("segment_chars", 40), k=0, **kw))
    finished = events[-1]
    assert isinstance(finished, farmops_client.Finished)
    return [e.text for e in events if isinstance(e, farmops_client.TextDelta)], finished.result


def test_pii_split_across_deltas_never_reaches_the_consumer_raw(client, farm, fake, admin):
    answer = OPENING + f"Call Musa on {PHONE} or mail {EMAIL} about the feed." + CLOSING
    fake.push(replace(F.text(answer), delta_chars=3))  # every number and address cut across deltas
    deltas, result = stream(client, farm)
    shown = "".join(deltas)
    assert PHONE not in shown and EMAIL not in shown and "0803" not in shown and "musa.bello" not in shown
    assert "Call Musa on [PHONE] or mail [EMAIL] about the feed." in shown
    assert shown == result.text and len(deltas) >= 3
    guarded = admin.execute(
        "SELECT (SELECT count(*) FROM farmops.guard_events WHERE ai_run_id = %(r)s),"
        " (SELECT sum(findings) FROM farmops.pii_findings WHERE ai_run_id = %(r)s AND source = 'answer')",
        {"r": result.run_id},
    ).fetchone()
    assert guarded == (0, 2)  # counted once, by the final screen; the segments recorded nothing


LEAK = f"the key in the config is {KEY} for the uploads."


@pytest.mark.parametrize("bad", [LEAK, EXFIL], ids=["secret", "exfil"])
def test_a_blocked_part_in_the_middle_is_never_shown_and_the_answer_refused(client, farm, fake, admin, bad):
    fake.push(replace(F.text(OPENING + bad + CLOSING), delta_chars=5))
    deltas, result = stream(client, farm)
    shown = "".join(deltas)
    assert deltas and OPENING.startswith(shown)  # the clean start was streamed, then nothing more
    assert KEY not in shown and "stats.example" not in shown and "Gumboro" not in shown
    assert result.text.startswith("The answer was withheld")
    assert result.screening["output"]["verdict"] == "block"
    assert result.screening["stream"]["blocked"] is True
    events = admin.execute(
        "SELECT outcome FROM farmops.guard_events WHERE ai_run_id = %s", [result.run_id]
    ).fetchall()
    assert events == [("replaced_output",)]  # one event, from the final screen
    assert result.status == "succeeded" and result.credits_actual  # the model's usage was read to the end


def test_a_clean_answer_arrives_in_several_pieces_before_the_model_finished(client, farm, fake, admin):
    long = OPENING + "The feed store holds forty bags. " * 8 + CLOSING
    fake.push(replace(F.text(long), drop_after_events=60))  # the model's stream breaks after 60 words
    got = []
    with client.tenant(farm, "alice") as t, pytest.raises(ModelCallFailed):
        for event in t.ask_stream("Tell me about pen three", segment_chars=40, k=0):
            got.append(event)
    pieces = [e.text for e in got if isinstance(e, farmops_client.TextDelta)]
    assert len(pieces) >= 3 and long.startswith("".join(pieces))  # released while the model was speaking
    fake.push(F.text(long))
    deltas, result = stream(client, farm)
    assert "".join(deltas) == result.text == long.strip() and len(deltas) >= 5
    assert len(deltas) - 1 <= result.screening["stream"]["screens"] <= len(long) // 40  # a round trip each


def test_a_short_answer_comes_whole_before_finished(client, farm, fake):
    fake.push(F.text(f"Musa is on {PHONE}."))
    deltas, result = stream(client, farm)
    assert deltas == ["Musa is on [PHONE]."] == [result.text]
    assert result.screening["stream"] == {"screens": 0, "blocked": False, "released_chars": len(result.text)}


def test_a_farm_that_keeps_phones_sees_them_in_the_stream(client, farm, fake):
    with client.tenant(farm, "alice") as t:
        t.set_pii_policy(["phone"])
    fake.push(replace(F.text(OPENING + f"Musa is on {PHONE}, mail {EMAIL}." + CLOSING), delta_chars=4))
    deltas, result = stream(client, farm)
    shown = "".join(deltas)
    assert PHONE in shown and EMAIL not in shown and "[EMAIL]" in shown and shown == result.text


def test_closing_a_stream_after_a_screened_piece_settles_once(client, farm, fake, admin):
    fake.push(F.text(OPENING + "The feed store holds forty bags. " * 6 + CLOSING))
    with client.tenant(farm, "alice") as t:
        events = t.ask_stream("count", segment_chars=40, k=0)
        first = next(iter(events))
        events.close()
        (run,) = t.runs()
    assert isinstance(first, farmops_client.TextDelta) and OPENING.startswith(first.text)
    assert run["status"] == "failed" and run["settled_at"] is not None
    legs = admin.execute(
        "SELECT count(*) FROM farmops.credit_ledger WHERE ai_run_id = %s AND kind LIKE 'settle%%'",
        [run["id"]],
    ).fetchone()[0]
    assert legs <= 1


@pytest.mark.parametrize("bad", [0, -1, 10**7, "40", 4.5, True, None])
def test_a_bad_segment_size_is_refused_before_anything_is_reserved(client, farm, fake, admin, bad):
    with client.tenant(farm, "alice") as t, pytest.raises(InvalidArgument):
        list(t.ask_stream("hello", segment_chars=bad))
    assert admin.execute("SELECT count(*) FROM farmops.ai_runs").fetchone()[0] == 0
    assert fake.seen() == []


def test_the_guard_screens_at_sentence_ends_once_a_segment_grew():
    from farmops_client.assistant.core import ModelCall, StreamAssembler

    guard = StreamGuard(segment_chars=20)
    call = ModelCall({}, True, StreamAssembler(), run_id="r")
    guard.start(call)

    def feed(text):
        call.assembler.feed({"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": text}}})
        step = guard.feed(text)
        return None if step is None else step.kwargs["text"]

    assert feed("Short. ") is None  # a sentence end, but not 20 characters yet
    assert feed("Then a longer bit ") is None  # 20 characters, no sentence end
    assert feed("ends here. ") == "Short. Then a longer bit ends here."  # the whole answer so far
    assert feed("x" * 78) is None
    assert feed("y") == "Short. Then a longer bit ends here. " + "x" * 78 + "y"  # 4 segments without an end
    assert guard.screened({"verdict": "allow", "released": "Short. Then"}) == "Short. Then"
    assert guard.screened({"verdict": "allow", "released": "Short. Then a longer"}) == " a longer"
    assert guard.screened({"verdict": "allow", "released": "Other text"}) == ""  # never contradicts
    assert guard.screened({"verdict": "block", "released": None}) == "" and guard.blocked
    assert feed("more. " * 10) is None  # blocked: no more screens
