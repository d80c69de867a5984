"""farmops.redact_pii: the labelled corpus (precision / recall per kind), one behaviour per kind,
character offsets around multibyte text, overlapping candidates, NULL / empty / huge input.

Everything runs as the application role without a tenant context: redaction is a pure function
that every storage path (and the client, before it embeds) may call.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys

import psycopg
import pytest
from pii_scoring import CORPUS, KINDS, load_corpus, run_corpus, score
from support import REPO, raises_sqlstate

PRECISION_AIM = 0.98
RECALL_AIM = 0.95


def redact(conn: psycopg.Connection, text: str | None) -> tuple[str | None, list[dict] | None]:
    return conn.execute("SELECT redacted, findings FROM farmops.redact_pii(%s)", [text]).fetchone()


def spans(conn, text: str) -> list[tuple[str, str]]:
    """(kind, covered text) of every finding."""
    _, findings = redact(conn, text)
    return [(f["kind"], text[f["start"] : f["start"] + f["length"]]) for f in findings]


def apply(text: str, findings: list[dict]) -> str:
    """What the redacted text must be, computed in Python from the findings' character offsets."""
    out, pos = [], 0
    for f in findings:
        out.append(text[pos : f["start"]] + f"[{f['kind'].upper()}]")
        pos = f["start"] + f["length"]
    return "".join(out) + text[pos:]


def assert_well_formed(text: str, redacted: str, findings: list[dict]) -> None:
    """Findings are sorted, disjoint, inside the text, of known kinds, and match the redaction."""
    end = 0
    for f in findings:
        assert set(f) == {"kind", "start", "length"} and f["kind"] in KINDS
        assert f["start"] >= end and f["length"] > 0 and f["start"] + f["length"] <= len(text)
        end = f["start"] + f["length"]
    assert redacted == apply(text, findings)


# --- the corpus ----------------------------------------------------------------------------------


def test_the_corpus_precision_and_recall_per_kind(app, capsys):
    items = load_corpus()
    result = score(items, run_corpus(app, items))
    with capsys.disabled():
        print(f"\nPII corpus: {len(items)} items, exact-span match\n{result.table()}")
        for miss in result.misses:
            print("  " + miss)
    for kind in KINDS:
        assert result.precision(kind) >= PRECISION_AIM, (kind, result.misses)
        assert result.recall(kind) >= RECALL_AIM, (kind, result.misses)


def test_the_corpus_is_large_labelled_and_rich_in_hard_negatives():
    items = load_corpus()
    assert len(items) >= 300
    negatives = [it for it in items if not it["findings"]]
    assert len(negatives) >= 100
    for it in items:
        assert_well_formed(it["text"], apply(it["text"], it["findings"]), it["findings"])
    per_kind = {k: sum(f["kind"] == k for it in items for f in it["findings"]) for k in KINDS}
    assert min(per_kind.values()) >= 40, per_kind
    joined = "\n".join(it["text"] for it in negatives)
    for hard in ("kobo", "₦", "2026-11-30", "30/11/2026", "INV-2026-000123", "BATCH-4471-22", " kg", "birds"):
        assert hard in joined, hard


def test_the_corpus_file_is_what_its_generator_writes(tmp_path):
    """The committed jsonl is reproducible: nobody hand-edited a label to fit the detector."""
    out = tmp_path / "corpus.jsonl"
    proc = subprocess.run(
        [sys.executable, str(REPO / "tests" / "trust" / "make_pii_corpus.py"), str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == CORPUS.read_bytes()


# --- one behaviour per kind ----------------------------------------------------------------------

FOUND = [
    ("email", "write to ada.obi+feed@farm.com.ng today", "ada.obi+feed@farm.com.ng"),
    ("email", "<Renée@ferme.fr>", "Renée@ferme.fr"),
    ("phone", "ring 0803 123 4567 now", "0803 123 4567"),
    ("phone", "ring 08031234567.", "08031234567"),
    ("phone", "ring +234 803 123 4567 now", "+234 803 123 4567"),
    ("phone", "uk office +44 20 7946 0958", "+44 20 7946 0958"),
    ("payment_card", "card 4111-1111-1111-1111 exp 09/27", "4111-1111-1111-1111"),
    ("payment_card", "amex 3782 822463 10005", "3782 822463 10005"),
    ("iban", "IBAN GB82 WEST 1234 5698 7654 32, BIC NWBKGB2L", "GB82 WEST 1234 5698 7654 32"),
    ("iban", "to DE89370400440532013000.", "DE89370400440532013000"),
    ("ip_address", "camera at 192.168.1.20:8080", "192.168.1.20"),
    ("ip_address", "v6 host 2001:db8::1 up", "2001:db8::1"),
    ("ip_address", "mapped ::ffff:192.0.2.128 ok", "::ffff:192.0.2.128"),
    ("ip_address", "link-local fe80::1: reboot it", "fe80::1"),
    ("national_id", "NIN: 12345678901", "12345678901"),
    ("national_id", "her BVN is 22123456789", "22123456789"),
    ("national_id", "SSN 078-05-1120", "078-05-1120"),
    ("secret", "key AKIAIOSFODNN7EXAMPLE leaked", "AKIAIOSFODNN7EXAMPLE"),
    ("secret", "Authorization: Bearer mF_9.B5f-4.1JqM", "mF_9.B5f-4.1JqM"),
    ("secret", "url?api_key=9f8e7d6c5b4a3928&page=2", "9f8e7d6c5b4a3928"),
    ("secret", "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl ok", None),
    # No digit, no '@' or no ':' in the text: the passes those gate are skipped, the others still run.
    ("secret", "key AKIAIOSFODNNQEXAMPLE leaked", "AKIAIOSFODNNQEXAMPLE"),
    ("secret", "use sk_live_abcdefghijklmnopqrstuv now", "sk_live_abcdefghijklmnopqrstuv"),
    ("email", "write to ada.obi@farm.ng today", "ada.obi@farm.ng"),
    ("ip_address", "v6 host abcd:ef::be up", "abcd:ef::be"),
    ("phone", "ring 0803 123 4567", "0803 123 4567"),
]


@pytest.mark.parametrize(("kind", "text", "value"), FOUND, ids=[f"{k}:{t[:24]}" for k, t, _ in FOUND])
def test_each_kind_is_found_with_its_exact_span(app, kind, text, value):
    value = value or text.split(" ")[1]
    assert spans(app, text) == [(kind, value)]


NOT_FOUND = [
    "Feed cost 18000000 kobo, ₦180,000 paid on 2026-11-30 (30/11/2026).",
    "Invoice INV-2026-000123, BATCH-4471-22, 2.35 kg, 12,500 birds.",
    "Reference 4111111111111112 (Luhn-invalid).",
    "1111 2222 3333 4444 passes Luhn but no issuer starts with 1.",
    "GB83WEST12345698765432 has a wrong check.",
    "Firmware v1.2.3.4, section 1.2.3.4.5, 256.1.1.1, lights 05:30:00, MAC 00:1A:2B:3C:4D:5E.",
    "Batch 12345678901 without a context word.",
    "SSN-shaped 000-12-3456, 666-12-3456, 912-12-3456, 123-00-4567, 123-45-0000.",
    "The bearer of bad news; token: pending; password: changeme.",
    "user@localhost and @handle are not addresses.",
    "Order 0803123456 has ten digits, 080312345678 twelve, INV-08031234567 is an invoice.",
    "Note :: heading, x::y is not hex, 10:30 is a time.",
]


@pytest.mark.parametrize("text", NOT_FOUND)
def test_look_alikes_are_left_alone(app, text):
    assert redact(app, text) == (text, [])


def test_redaction_replaces_each_finding_by_its_kind(app):
    text = "Mail ade@farm.ng or call 0803 123 4567; card 4111 1111 1111 1111."
    assert redact(app, text)[0] == "Mail [EMAIL] or call [PHONE]; card [PAYMENT_CARD]."


def test_a_private_key_block_is_one_finding_and_stops_at_its_end_line(app):
    pem = (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA3Tz2mr7SZ\nkG7r1PxYH0aH2mXt4=\n"
        "-----END RSA PRIVATE KEY-----"
    )
    text = f"key:\n{pem}\nthen notes --- and -----BEGIN NOTES-----\n{pem}"
    redacted, findings = redact(app, text)
    assert [(f["start"], f["length"]) for f in findings] == [(5, len(pem)), (len(text) - len(pem), len(pem))]
    assert redacted == "key:\n[SECRET]\nthen notes --- and -----BEGIN NOTES-----\n[SECRET]"


def test_a_cut_off_private_key_block_is_still_a_secret(app):
    text = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49\nAwEHBG0wawIBAQQg\n\nnext chunk"
    assert spans(app, text) == [("secret", text[: text.index("\n\n")])]


# --- offsets and overlaps ------------------------------------------------------------------------


def test_offsets_are_characters_not_bytes(app):
    text = "Ọ̀gbẹ́ni 👨🏾‍🌾 ₦ — ade@farm.ng, 🐔 0803 123 4567"
    redacted, findings = redact(app, text)
    assert [(f["kind"], text[f["start"] : f["start"] + f["length"]]) for f in findings] == [
        ("email", "ade@farm.ng"),
        ("phone", "0803 123 4567"),
    ]
    assert redacted == "Ọ̀gbẹ́ni 👨🏾‍🌾 ₦ — [EMAIL], 🐔 [PHONE]"


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


OVERLAPS = [
    # (text, expected kind and value): the longest candidate wins, ties go to the more specific kind.
    ("Pay GB29 NWBK 6016 1331 9268 19 now", ("iban", "GB29 NWBK 6016 1331 9268 19")),
    ("08031234567@farm.ng", ("email", "08031234567@farm.ng")),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl", None),
    ("NIN 08031234567", ("national_id", "08031234567")),
    ("token: AKIAIOSFODNN7EXAMPLE", ("secret", "AKIAIOSFODNN7EXAMPLE")),
    ("+2348031234567", ("phone", "+2348031234567")),
]


@pytest.mark.parametrize(("text", "expected"), OVERLAPS)
def test_overlapping_candidates_give_one_finding(app, text, expected):
    expected = expected or ("secret", text.split("Bearer ")[1])
    assert spans(app, text) == [expected]


def test_a_luhn_valid_nigerian_number_is_a_phone_not_a_card(app):
    number = next(n for n in (f"23480312345{i:02d}" for i in range(100)) if luhn_ok(n))
    assert spans(app, f"call {number}") == [("phone", number)]


def test_random_mixtures_keep_offsets_and_redaction_consistent(app):
    """Offsets agree with Python's character indexing and with the redacted text, whatever the mix."""
    items = load_corpus()
    fragments = [it["text"] for it in items] + ["🐔", "ẹ́", "₦", " ", "\n", "0", "4111", ":", ".", "@", "-"]
    rng = random.Random(7)
    texts = ["".join(rng.choice(fragments) for _ in range(rng.randint(1, 12))) for _ in range(150)]
    rows = app.execute(
        "SELECT t.text, r.redacted, r.findings "
        "FROM unnest(%s::text[]) AS t (text), farmops.redact_pii(t.text) AS r",
        [texts],
    ).fetchall()
    assert len(rows) == len(texts)
    for text, redacted, findings in rows:
        assert_well_formed(text, redacted, findings)


# --- NULL, empty, huge ---------------------------------------------------------------------------


def test_null_gives_null_and_empty_gives_empty(app):
    assert redact(app, None) == (None, None)
    assert redact(app, "") == ("", [])
    assert redact(app, " \n\t") == (" \n\t", [])


def test_a_megabyte_of_farm_text_with_pii(app):
    line = "Pen 3: 1,200 birds, 2.35 kg, ₦180,000 — call 0803 123 4567 or ade@farm.ng 🐔\n"
    text = line * (1_000_000 // len(line.encode()))
    redacted, findings = redact(app, text)
    assert len(findings) == 2 * text.count("\n")
    assert redacted == text.replace("0803 123 4567", "[PHONE]").replace("ade@farm.ng", "[EMAIL]")
    assert findings[-1]["start"] == len(text) - len(line) + line.index("ade@")


@pytest.mark.parametrize(
    "unit",
    [
        *("1234567890", "4111 1111 1111 1111 ", "0803 ", "+1 ", "1.2.3.4.", "a:b:", "a@b.", "GB82 ", "NIN "),
        *("eyJ.", "-", "-----BEGIN ", "Bearer ", "é9", "🐔"),
    ],
)
def test_a_megabyte_of_adversarial_text_finishes_and_stays_consistent(app, unit):
    text = unit * (1_000_000 // len(unit.encode()))
    redacted, findings = redact(app, text)
    assert_well_formed(text, redacted, findings)


# --- privileges and catalog ----------------------------------------------------------------------


def test_the_private_helpers_are_not_callable_by_the_app(app):
    with raises_sqlstate("42501"):
        app.execute("SELECT * FROM farmops._pii_candidates('x')")


def test_every_pii_function_is_pure_pinned_and_commented(admin):
    rows = admin.execute(
        """SELECT p.proname, p.provolatile, p.proisstrict, p.proparallel, p.proconfig,
                  obj_description(p.oid, 'pg_proc'), p.prosecdef
           FROM pg_proc AS p
           WHERE p.pronamespace = 'farmops'::regnamespace
             AND p.proname IN ('redact_pii', '_pii_candidates', '_pii_matches', '_luhn_valid', '_iban_valid',
                               '_ipv6_valid')"""
    ).fetchall()
    assert len(rows) == 6
    for name, volatile, strict, parallel, config, comment, definer in rows:
        assert (volatile, strict, parallel) == ("i", True, "s"), name
        assert definer == (name == "redact_pii"), name  # only to lend EXECUTE on the private helpers
        # _pii_candidates' one query is planned once (generic): a custom plan per call cost ~1 ms.
        generic = ["plan_cache_mode=force_generic_plan"] if name == "_pii_candidates" else []
        assert config == ["search_path=pg_catalog, pg_temp", *generic], name
        assert comment, name


def test_findings_are_json_objects_with_three_keys(app):
    (raw,) = app.execute("SELECT findings::text FROM farmops.redact_pii('ip 10.0.0.1')").fetchone()
    assert json.loads(raw) == [{"kind": "ip_address", "start": 3, "length": 8}]


def test_the_check_helpers_agree_with_python(admin):
    """Luhn and mod-97 in SQL against independent Python checks, on random and known values."""
    rng = random.Random(11)
    numbers = ["".join(rng.choice("0123456789") for _ in range(rng.randint(12, 19))) for _ in range(400)]
    numbers += ["4111111111111111", "79927398713", "378282246310005"]
    rows = admin.execute("SELECT n, farmops._luhn_valid(n) FROM unnest(%s::text[]) AS n", [numbers])
    rows = rows.fetchall()
    assert all(ok == luhn_ok(n) for n, ok in rows)
    assert sum(ok for _, ok in rows) >= 30  # both outcomes occur
    ibans = ["GB82WEST12345698765432", "GB83WEST12345698765432", "DE89370400440532013000"]
    ibans.append("NL91ABNA0417164301")
    rows = admin.execute("SELECT farmops._iban_valid(i) FROM unnest(%s::text[]) AS i", [ibans]).fetchall()
    assert [r[0] for r in rows] == [True, False, True, False]


def test_multibyte_text_inside_a_finding_keeps_the_rest_intact(app):
    pem = "-----BEGIN PRIVATE KEY-----\nComment: clé 🐔\nMIGHAgEAMBMGByqGSM49\n-----END PRIVATE KEY-----"
    for text in (f"ẹ́ {pem} ₦ after", "NIN (ọ̀gá) 12345678901 ₦", "password=Ọ̀gá2026ẹ́ and ₦5"):
        redacted, findings = redact(app, text)
        assert len(findings) == 1
        assert_well_formed(text, redacted, findings)
