"""farmops.screen_stream_text called directly as the application role: what a stream may release
(held back, cut at white space outside every finding, redacted, a prefix of the final answer), that
it records nothing, bad input, other farms, wrong members and concurrent callers."""

from __future__ import annotations

import re
import uuid

import pytest
from support import concurrently, raises_sqlstate, row, tenant
from support.write_path import make_farm, make_run

HOLD = 80  # the function's hold-back (sql/functions/50_trust/stream_screening.sql)
PHONE = "0803 123 4567"
EMAIL = "musa.bello@example.com"
LEAK = "Sure, the AWS key in the config is AKIAIOSFODNN7EXAMPLE with its secret."
CLEAN = (
    "Broilers in week three eat about ninety grams of feed per bird per day. Keep the drinkers clean "
    "and check the litter twice a day. Vaccinate against Gumboro on day fourteen, and record every "
    "loss in the mortality log before the evening feed."
)


def screen(app, farm, run, text, user="bot"):
    with tenant(app, farm, user):
        return row(app, "screen_stream_text", run_id=run, text=text)


def screen_output(app, farm, run, text, user="bot"):
    with tenant(app, farm, user):
        return row(app, "screen_output", run_id=run, text=text)


def written(admin, farm) -> tuple[int, int]:
    """Guard events and PII finding rows of the farm: what a screen could have recorded."""
    return admin.execute(
        "SELECT (SELECT count(*) FROM farmops.guard_events WHERE farm_id = %(f)s),"
        " (SELECT count(*) FROM farmops.pii_findings WHERE farm_id = %(f)s)",
        {"f": farm},
    ).fetchone()


def expected_cut(text: str) -> str:
    """The raw prefix the function releases for a text without findings."""
    head = text[: max(len(text) - HOLD + 1, 0)]
    spaces = [m.start() for m in re.finditer(r"[ \t\n\r\f\v]", head)]
    return text[: spaces[-1]] if spaces else ""


def test_a_clean_text_is_released_up_to_white_space_held_back_from_the_end(app, wfarm):
    for n in (0, 1, 40, HOLD, HOLD + 5, 120, len(CLEAN)):
        got = screen(app, wfarm.id, wfarm.run, CLEAN[:n])
        assert got["verdict"] == "allow" and got["released"] == expected_cut(CLEAN[:n]), n
    full = screen(app, wfarm.id, wfarm.run, CLEAN)["released"]
    assert len(CLEAN) - HOLD - 12 < len(full) <= len(CLEAN) - HOLD and CLEAN[len(full)] == " "


def test_pii_is_released_redacted_and_the_cut_never_splits_a_finding(app, wfarm):
    text = f"Call Musa on {PHONE} or mail {EMAIL} today. " + CLEAN
    got = screen(app, wfarm.id, wfarm.run, text)["released"]
    assert got.startswith("Call Musa on [PHONE] or mail [EMAIL] today.")
    assert PHONE not in got and EMAIL not in got
    # The last white space before the hold-back is inside the phone number: the cut moves before it.
    text = "Call Musa on " + PHONE + " " + "x" * (HOLD - 10)
    assert text[len(text) - HOLD] == " " and text[len(text) - HOLD - 4 : len(text) - HOLD] == "0803"
    assert screen(app, wfarm.id, wfarm.run, text)["released"] == "Call Musa on"


def test_every_prefix_releases_a_prefix_of_the_next_and_of_the_final_answer(app, wfarm):
    text = (
        f"Musa's number is {PHONE}, his card 4111 1111 1111 1111, the IBAN GB82 WEST 1234 5698 7654 32 "
        f"and the vet's mail {EMAIL}; the NIN is 12345678901. " + CLEAN
    )
    final = screen_output(app, wfarm.id, wfarm.run, text)["answer"]
    raw = (PHONE, "4111 1111", "GB82 WEST", EMAIL, "12345678901", "0803", "musa.bello")
    before = ""
    for n in range(0, len(text) + 1, 3):
        got = screen(app, wfarm.id, wfarm.run, text[:n])["released"]
        assert got.startswith(before) and final.startswith(got), n
        assert not any(r in got for r in raw), (n, got)
        before = got
    assert len(before) > len(final) - HOLD - 12


def test_a_blocked_text_releases_nothing_and_no_screen_records_anything(app, admin, wfarm):
    before = written(admin, wfarm.id)
    got = screen(app, wfarm.id, wfarm.run, LEAK + " " + CLEAN)
    assert (got["verdict"], got["released"]) == ("block", None) and "secrets" in got["categories"]
    assert screen(app, wfarm.id, wfarm.run, f"{PHONE} " + CLEAN)["verdict"] == "allow"
    assert written(admin, wfarm.id) == before  # the final screen_output records once, not each segment


def test_the_farms_pii_policy_and_its_own_rules_apply(app, wfarm):
    text = f"Musa's number is {PHONE}. " + CLEAN
    with tenant(app, wfarm.id, "alice"):
        row(app, "set_pii_policy", {"keep_kinds": "text[]"}, keep_kinds=["phone"])
        rule = {"category": "off_topic", "stages": ["output"], "pattern": "gumboro", "action": "block"}
        row(app, "set_guard_rule", {"stages": "text[]"}, name="no_gumboro", **rule)
    got = screen(app, wfarm.id, wfarm.run, text)
    assert (got["verdict"], got["released"]) == ("block", None) and got["rule_names"] == ["no_gumboro"]
    with tenant(app, wfarm.id, "alice"):
        row(app, "drop_guard_rule", name="no_gumboro")
    assert PHONE in screen(app, wfarm.id, wfarm.run, text)["released"]


def test_character_offsets_hold_with_multibyte_and_odd_text(app, wfarm):
    text = "🐔🐔 Ẹ̀kọ́ ọjà: mail " + EMAIL + " ​‮ now\ttoday\n" + "ñ" * 10 + " " + CLEAN
    got = screen(app, wfarm.id, wfarm.run, text)["released"]
    assert got.startswith("🐔🐔 Ẹ̀kọ́ ọjà: mail [EMAIL] ​‮ now\ttoday\n" + "ñ" * 10 + " Broilers")
    assert EMAIL not in got
    cut = len(got) - len("[EMAIL]") + len(EMAIL)
    assert got[len("🐔🐔 Ẹ̀kọ́ ọjà: mail [EMAIL]") :] == text[len("🐔🐔 Ẹ̀kọ́ ọjà: mail ") + len(EMAIL) : cut]
    assert screen(app, wfarm.id, wfarm.run, "x" * 1_048_576)["released"] == ""  # no white space: nothing yet


def test_bad_arguments_missing_tenant_and_roles(app, wfarm):
    for text in (None, "x" * 1_048_577):
        with raises_sqlstate("OF006", text and len(text)):
            screen(app, wfarm.id, wfarm.run, text)
    with raises_sqlstate("OF006"):
        screen(app, wfarm.id, None, "hello")
    with raises_sqlstate("OF001"):
        row(app, "screen_stream_text", run_id=wfarm.run, text="hello")
    with raises_sqlstate("OF003"):
        screen(app, wfarm.id, wfarm.run, "hello", user="vic")  # a viewer does not run AI
    with raises_sqlstate("OF002"):
        screen(app, wfarm.id, wfarm.run, "hello", user="stranger")


def test_other_farms_dead_and_other_members_runs_are_refused(app, admin, wfarm):
    other_farm = make_farm(app, admin, name="Farm B", owner="bola")
    with raises_sqlstate("OF102"):  # another farm's live run, from this farm
        screen(app, wfarm.id, other_farm.run, "hello")
    with raises_sqlstate("OF102"):  # this farm's run, from the other farm's context
        screen(app, other_farm.id, wfarm.run, "hello")
    with raises_sqlstate("OF102"):
        screen(app, wfarm.id, uuid.uuid4(), "hello")
    with raises_sqlstate("OF003"):  # the agent may not drive the worker's run
        screen(app, wfarm.id, make_run(admin, wfarm.id, user="wes"), "hello")
    for status in ("succeeded", "failed", "expired"):
        with raises_sqlstate("OF205", status):
            screen(app, wfarm.id, make_run(admin, wfarm.id, status=status), "hello")
    with raises_sqlstate("OF205"):
        screen(app, wfarm.id, make_run(admin, wfarm.id, live=False), "hello")
    assert screen(app, wfarm.id, wfarm.run, "hello", user="alice")["verdict"] == "allow"  # an owner may


@pytest.mark.parametrize("value", ["not-a-uuid", 12, ["a"]])
def test_a_wrongly_typed_run_id_is_the_clients_cast_error_not_a_function_error(app, wfarm, value):
    import psycopg

    with pytest.raises(psycopg.Error) as info, tenant(app, wfarm.id, "bot"):
        app.execute("SELECT * FROM farmops.screen_stream_text(p_run_id => %s::uuid, p_text => 'x')", [value])
    assert info.value.sqlstate in ("22P02", "42846") and "function" not in (info.value.diag.context or "")


def test_concurrent_screens_agree_and_race_a_settle_cleanly(app, admin, connect, wfarm):
    from support.credits import settle

    text = f"Call {PHONE} now. " + CLEAN
    conns = [connect("app") for _ in range(4)]

    def screening(conn):
        return lambda: screen(conn, wfarm.id, wfarm.run, text)["released"]

    got = concurrently([screening(c) for c in conns])
    assert len(set(got)) == 1 and "[PHONE]" in got[0]
    run = make_run(admin, wfarm.id)
    results = concurrently(
        [*(lambda c=c: screen(c, wfarm.id, run, text)["released"] for c in conns[:3]),
         lambda: settle(admin, wfarm.id, run, "succeeded", user="bot", credits_actual=1)]
    )  # fmt: skip
    for r in results[:3]:  # before the settle: the released text; after it: not live
        assert r == got[0] or getattr(r, "sqlstate", None) == "OF205", r
    assert not isinstance(results[3], Exception)
    assert written(admin, wfarm.id)[0] == 0


def test_a_mask_rule_on_the_run_masks_the_stream_as_it_masks_the_final_answer(app, admin, wfarm):
    """The stream and the final screen take the same kinds (the run's, mask rules included), so what
    a stream released stays a prefix of the answer the run keeps."""
    text = f"Musa's number is {PHONE}. " + CLEAN
    feature = admin.execute("SELECT feature FROM farmops.ai_runs WHERE id = %s", [wfarm.run]).fetchone()[0]
    with tenant(app, wfarm.id, "alice"):
        row(app, "set_pii_policy", {"keep_kinds": "text[]"}, keep_kinds=["phone"])
        row(app, "set_policy", name="mask-other", action="reserve", decision="mask", masked_kinds=["phone"],
            feature=feature + "-other")  # fmt: skip
    assert PHONE in screen(app, wfarm.id, wfarm.run, text)["released"]  # another feature's rule: kept
    assert PHONE in screen_output(app, wfarm.id, wfarm.run, text)["answer"]
    with tenant(app, wfarm.id, "alice"):
        row(app, "set_policy", name="mask-this", action="reserve", decision="mask", masked_kinds=["phone"],
            feature=feature)  # fmt: skip
    released = screen(app, wfarm.id, wfarm.run, text)["released"]
    final = screen_output(app, wfarm.id, wfarm.run, text)["answer"]
    assert PHONE not in released and "[PHONE]" in released
    assert final.startswith(released) and PHONE not in final
