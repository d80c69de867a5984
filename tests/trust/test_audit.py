"""The audit chain (issue 13 section 1, ADR 0018): governed writes are chained per farm, the chain and
the objects it covers verify, tampering is caught at the right seq, and a trusted head catches a
rewritten history. Tampering is done as the superuser (the only one who can); everything else as the
application role."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.types.json import Jsonb
from support import as_maintainer, call, concurrently, raises_sqlstate, records, row, tenant, value
from support.credits import add_member, grant, reserve, settle, start
from support.write_path import VALID, propose, set_autonomy


def head(app, farm, user="alice") -> dict:
    with tenant(app, farm, user):
        return row(app, "audit_head", farm_id=farm)


def verify(app, farm, user="alice", **trusted) -> dict:
    with tenant(app, farm, user):
        return row(app, "verify_audit", farm_id=farm, **trusted)


def entries(admin, farm) -> list[tuple]:
    """(seq, action, object_table, object_id) of the farm's sealed entries, in order."""
    return admin.execute(
        "SELECT seq, action, object_table, object_id FROM farmops.audit_log WHERE farm_id = %s ORDER BY seq",
        [farm],
    ).fetchall()


def seq_of(admin, farm, action, object_id=None) -> int:
    return admin.execute(
        "SELECT min(seq) FROM farmops.audit_log WHERE farm_id = %s AND action = %s "
        "AND (%s::text IS NULL OR object_id = %s::text)",
        [farm, action, object_id, object_id],
    ).fetchone()[0]


@pytest.fixture
def busy(app, funded) -> dict:
    """The funded farm after a run reserved, started and settled, and a member added."""
    run = reserve(app, funded, credits=10)
    start(app, funded, run["id"])
    settle(app, funded, run["id"], credits_actual=4)
    add_member(app, funded, "dave", "worker")
    return {"farm": funded, "run": run["id"]}


def test_governed_writes_are_chained_in_order_with_ids_not_text(app, admin, busy):
    farm = busy["farm"]
    h = head(app, farm)
    actions = [e[1] for e in entries(admin, farm)]
    assert actions == [
        "member.added", "ledger.grant", "run.reserved", "run.running", "ledger.settle_refund",
        "run.succeeded", "member.added",
    ]  # fmt: skip
    assert h["seq"] == len(actions)
    result = verify(app, farm)
    assert (result["entries"], result["head_seq"], result["head_hash"]) == (h["seq"], h["seq"], h["hash"])
    assert result["broken_at_seq"] is None and result["problem"] is None
    # Actors and a member's key are subject ids, never the user id itself.
    text = admin.execute("SELECT string_agg(to_jsonb(l)::text, ' ') FROM farmops.audit_log AS l").fetchone()[
        0
    ]
    assert "alice" not in text and "dave" not in text
    # The subjects name them (until erasure).
    with tenant(app, farm, "alice"):
        named = app.execute(
            "SELECT s.user_id FROM farmops.audit_log AS l JOIN farmops.subjects AS s "
            "ON s.farm_id = l.farm_id AND s.id = l.actor WHERE l.action = 'run.reserved'"
        ).fetchone()
    assert named == ("alice",)


def test_a_reservation_is_one_event_and_a_replay_adds_none(app, admin, funded):
    first = reserve(app, funded, request_id="req-1")
    again = reserve(app, funded, request_id="req-1")
    assert again["id"] == first["id"]
    head(app, funded)
    run_entries = [
        e for e in entries(admin, funded) if e[2] in ("ai_runs", "credit_ledger") and e[1] != "ledger.grant"
    ]
    assert run_entries == [(run_entries[0][0], "run.reserved", "ai_runs", str(first["id"]))]
    assert verify(app, funded)["broken_at_seq"] is None


def test_a_failed_reservation_leaves_no_entry(app, admin, farm):
    with raises_sqlstate("OF101"):
        reserve(app, farm, credits=5)
    assert head(app, farm)["seq"] == 1  # member.added only
    assert admin.execute("SELECT count(*) FROM farmops._audit_pending").fetchone()[0] == 0


def test_autonomy_an_auto_applied_draft_and_its_record_are_audited(app, admin, wfarm):
    set_autonomy(app, wfarm.id, "alice", "auto", ["note"])
    draft_id, outcome, record_id = propose(app, wfarm.id, "bot", wfarm.run, "note", VALID["note"][0])
    assert outcome == "auto_applied"
    head(app, wfarm.id)
    log = entries(admin, wfarm.id)
    assert ("autonomy.added", "autonomy_changes", "1") in [e[1:] for e in log]
    assert ("draft.auto_applied", "assistant_drafts", str(draft_id)) in [e[1:] for e in log]
    assert ("record.added", "note_records", str(record_id)) in [e[1:] for e in log]
    detail = admin.execute(
        "SELECT detail FROM farmops.audit_log WHERE farm_id = %s AND action = 'draft.auto_applied'",
        [wfarm.id],
    ).fetchone()[0]
    assert detail == {"ai_run_id": str(wfarm.run), "record_type": "note", "status": "auto_applied",
                      "record_id": str(record_id)}  # fmt: skip
    assert verify(app, wfarm.id)["broken_at_seq"] is None


# -- tampering, as the superuser ----------------------------------------------------------------------------
def _tamper(admin, table: str, sql: str, params=()) -> None:
    """Run ``sql`` with every trigger of ``table`` disabled (a superuser rewriting history), then
    enable them again as they were (ALWAYS)."""
    names = [
        r[0]
        for r in admin.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal",
            [f"farmops.{table}"],
        )
    ]
    admin.execute(f"ALTER TABLE farmops.{table} DISABLE TRIGGER USER")
    try:
        admin.execute(sql, params)
    finally:
        for name in names:
            admin.execute(f'ALTER TABLE farmops.{table} ENABLE ALWAYS TRIGGER "{name}"')


def test_editing_a_ledger_leg_is_caught_at_its_entry(app, admin, busy):
    farm = busy["farm"]
    head(app, farm)
    _tamper(admin, "credit_ledger", "UPDATE farmops.credit_ledger SET delta = 1000, balance_after = 1090 "
            "WHERE farm_id = %s AND kind = 'grant'", [farm])  # fmt: skip
    result = verify(app, farm)
    assert result["broken_at_seq"] == seq_of(admin, farm, "ledger.grant")
    assert "credit_ledger 1" in result["problem"] and "changed" in result["problem"]


def test_editing_a_reserve_leg_is_caught_at_its_reservation(app, admin, busy):
    farm = busy["farm"]
    head(app, farm)
    _tamper(admin, "credit_ledger", "UPDATE farmops.credit_ledger SET reason = 'other' "
            "WHERE farm_id = %s AND kind = 'reserve'", [farm])  # fmt: skip
    result = verify(app, farm)
    assert result["broken_at_seq"] == seq_of(admin, farm, "run.reserved", busy["run"])


def test_a_ledger_leg_skipped_by_moving_the_mark_is_caught(app, admin, busy):
    """Legs reach the chain from the ledger itself, past the farm's mark (migration 0160): a superuser
    who moves the mark over a new leg, so that no seal ever links it, is caught at that leg."""
    farm = busy["farm"]
    h = head(app, farm)
    grant(app, farm, 5)
    leg = admin.execute("SELECT max(seq) FROM farmops.credit_ledger WHERE farm_id = %s", [farm]).fetchone()[0]
    admin.execute("UPDATE farmops._audit_ledger_marks SET sealed_seq = %s WHERE farm_id = %s", [leg, farm])
    result = verify(app, farm)
    assert result["entries"] == h["seq"]
    assert result["broken_at_seq"] == h["seq"] + 1
    assert result["problem"] == f"credit_ledger {leg} has no audit entry"


def test_a_reservation_queues_nothing_and_its_leg_is_sealed_from_the_ledger(app, admin, busy):
    """The reservation path writes nothing for the audit (no trigger on ai_runs' insert or the ledger):
    the seal links run.reserved and each later leg from credit_ledger, once each, and moves the mark."""
    farm = busy["farm"]
    head(app, farm)
    assert admin.execute("SELECT count(*) FROM farmops._audit_pending").fetchone()[0] == 0
    triggers = admin.execute(
        "SELECT tgname FROM pg_trigger WHERE tgrelid IN ('farmops.ai_runs'::regclass, "
        "'farmops.credit_ledger'::regclass) AND NOT tgisinternal AND tgname LIKE '%%audited'"
    ).fetchall()
    assert triggers == [("ai_runs_status_is_audited",)]
    run = reserve(app, farm)
    grant(app, farm, 7)
    assert admin.execute("SELECT count(*) FROM farmops._audit_pending").fetchone()[0] == 0
    h = head(app, farm)
    tail = admin.execute(
        "SELECT action, object_table, object_id, detail FROM farmops.audit_log WHERE farm_id = %s "
        "ORDER BY seq DESC LIMIT 2",
        [farm],
    ).fetchall()
    legs = admin.execute(
        "SELECT seq, delta FROM farmops.credit_ledger WHERE farm_id = %s ORDER BY seq DESC LIMIT 2", [farm]
    ).fetchall()
    balance = admin.execute("SELECT credit_balance FROM farmops.farms WHERE id = %s", [farm]).fetchone()[0]
    assert tail == [
        (
            "ledger.grant",
            "credit_ledger",
            str(legs[0][0]),
            {"run": None, "delta": 7, "balance_after": balance},
        ),
        ("run.reserved", "ai_runs", str(run["id"]), {"credits_reserved": -legs[1][1]}),
    ]
    mark = admin.execute(
        "SELECT sealed_seq FROM farmops._audit_ledger_marks WHERE farm_id = %s", [farm]
    ).fetchone()
    assert mark == (legs[0][0],)
    assert head(app, farm) == h  # nothing sealed twice
    assert verify(app, farm)["broken_at_seq"] is None


@pytest.mark.parametrize(
    ("what", "sql", "expect"),
    [
        (
            "edit",
            "UPDATE farmops.audit_log SET detail = '{{}}' WHERE farm_id = '{f}' AND seq = 3",
            (3, "was changed"),
        ),
        ("delete", "DELETE FROM farmops.audit_log WHERE farm_id = '{f}' AND seq = 3", (3, "missing")),
        (
            "reorder",
            "UPDATE farmops.audit_log SET seq = seq + 1000 WHERE farm_id = '{f}' AND seq IN (3, 4); "
            "UPDATE farmops.audit_log SET seq = 4 WHERE farm_id = '{f}' AND seq = 1003; "
            "UPDATE farmops.audit_log SET seq = 3 WHERE farm_id = '{f}' AND seq = 1004",
            (3, "does not link"),
        ),
        (
            "truncate the tail",
            "DELETE FROM farmops.audit_log WHERE farm_id = '{f}' AND seq >= 6",
            (None, None),
        ),
    ],
)
def test_tampering_with_entries_is_caught_at_the_right_seq(app, admin, busy, what, sql, expect):
    farm = busy["farm"]
    h = head(app, farm)
    _tamper(admin, "audit_log", sql.format(f=farm))
    result = verify(app, farm)
    if what == "truncate the tail":
        # Indistinguishable from a shorter history without an anchor; the trusted head catches it.
        assert result["broken_at_seq"] is None
        anchored = verify(app, farm, trusted_seq=h["seq"], trusted_hash=h["hash"])
        assert anchored["broken_at_seq"] == 6 and "beyond" in anchored["problem"]
        return
    assert result["broken_at_seq"] == expect[0], result
    assert expect[1] in result["problem"]


REHASH = """DO $$
DECLARE e farmops.audit_log; prev text := repeat('0', 64);
BEGIN
    FOR e IN SELECT * FROM farmops.audit_log WHERE farm_id = '{farm}' ORDER BY seq LOOP
        e.prev_hash := prev;
        e.hash := farmops._audit_entry_hash(e);
        UPDATE farmops.audit_log SET prev_hash = e.prev_hash, hash = e.hash
        WHERE farm_id = e.farm_id AND seq = e.seq;
        prev := e.hash;
    END LOOP;
END $$"""


@pytest.mark.parametrize("target", ["a ledger leg and its content_hash", "a mutable object's detail"])
def test_a_rewritten_and_rehashed_history_is_caught_by_the_anchor(app, admin, busy, target):
    farm = busy["farm"]
    trusted = head(app, farm)  # kept outside the database
    if target == "a ledger leg and its content_hash":
        # The grant becomes 1000 credits: the leg, its entry's content_hash, then every hash.
        _tamper(admin, "credit_ledger", "UPDATE farmops.credit_ledger SET delta = 1000 "
                "WHERE farm_id = %s AND kind = 'grant'", [farm])  # fmt: skip
        _tamper(admin, "audit_log", "UPDATE farmops.audit_log SET content_hash = farmops._audit_content_hash("
                "farmops._audit_content(farm_id, object_table, object_id, action, false), detail) "
                "WHERE farm_id = %s AND action = 'ledger.grant'", [farm])  # fmt: skip
    else:
        # dave becomes an owner in entry 7 (a member's role: the entry's detail is the evidence).
        _tamper(admin, "audit_log", "UPDATE farmops.audit_log SET detail = '{\"role\": \"owner\"}', "
                "content_hash = encode(sha256(convert_to('{\"role\": \"owner\"}', 'UTF8')), 'hex') "
                "WHERE farm_id = %s AND seq = 7", [farm])  # fmt: skip
    _tamper(admin, "audit_log", REHASH.format(farm=farm))
    assert verify(app, farm)["broken_at_seq"] is None  # consistent without an anchor
    anchored = verify(app, farm, trusted_seq=trusted["seq"], trusted_hash=trusted["hash"])
    assert anchored["broken_at_seq"] == trusted["seq"]
    assert "trusted head" in anchored["problem"]


def test_an_anchor_older_than_a_rewrite_of_later_entries_still_holds(app, admin, busy):
    farm = busy["farm"]
    early = head(app, farm)
    reserve(app, farm)
    head(app, farm)  # sealed: entry early + 1 is the reservation
    _tamper(admin, "audit_log", "UPDATE farmops.audit_log SET detail = '{}' WHERE farm_id = %s AND seq = %s",
            [farm, early["seq"] + 1])  # fmt: skip
    _tamper(admin, "audit_log", REHASH.format(farm=farm))
    result = verify(app, farm, trusted_seq=early["seq"], trusted_hash=early["hash"])
    # The anchor still holds (history up to it is untouched); the content check catches the rest.
    assert result["broken_at_seq"] == early["seq"] + 1


def test_a_trusted_head_that_matches_verifies(app, busy):
    trusted = head(app, busy["farm"])
    reserve(app, busy["farm"])  # the chain grows past the anchor
    result = verify(app, busy["farm"], trusted_seq=trusted["seq"], trusted_hash=trusted["hash"])
    assert result["broken_at_seq"] is None and result["head_seq"] == trusted["seq"] + 1


def test_editing_a_record_is_caught(app, admin, wfarm):
    set_autonomy(app, wfarm.id, "alice", "auto", ["note"])
    _, _, record_id = propose(app, wfarm.id, "bot", wfarm.run, "note", VALID["note"][0])
    head(app, wfarm.id)
    _tamper(
        admin, "note_records", "UPDATE farmops.note_records SET body = 'rewritten' WHERE id = %s", [record_id]
    )
    result = verify(app, wfarm.id)
    assert result["broken_at_seq"] == seq_of(admin, wfarm.id, "record.added", record_id)
    assert "note_records" in result["problem"]


# -- a product's own record table, outside schema farmops --------------------------------------------------
@pytest.fixture
def product_table(admin, owner):
    """acme.egg_collections: a product's own record table in its own schema, registered as egg_collection."""
    return records.product_table(admin, owner)


def test_a_products_own_record_table_is_audited_and_verified(app, admin, wfarm, product_table):
    # The draft / confirm path: the agent proposes (routine types default to a draft), the owner confirms.
    draft_id, outcome, _ = propose(app, wfarm.id, "bot", wfarm.run, "egg_collection", {"crates": 12})
    assert outcome == "drafted"
    with tenant(app, wfarm.id, "alice"):
        record_id = row(app, "confirm_draft", draft_id=draft_id)["record_id"]
    head(app, wfarm.id)
    log = [e[1:] for e in entries(admin, wfarm.id)]
    assert ("record.added", product_table, str(record_id)) in log
    assert ("draft.confirmed", "assistant_drafts", str(draft_id)) in log
    # Hashed from the row like farmops' own records: the entry's content_hash covers it.
    assert verify(app, wfarm.id)["broken_at_seq"] is None
    admin.execute("ALTER TABLE acme.egg_collections DISABLE TRIGGER USER")
    admin.execute("UPDATE acme.egg_collections SET crates = 120 WHERE id = %s", [record_id])
    admin.execute("ALTER TABLE acme.egg_collections ENABLE ALWAYS TRIGGER egg_collections_is_audited")
    result = verify(app, wfarm.id)
    assert result["broken_at_seq"] == seq_of(admin, wfarm.id, "record.added", record_id)
    assert result[
        "problem"
    ] == f"{product_table} {record_id} or entry {result['broken_at_seq']} was changed " + (
        "(content_hash differs)"
    )
    # A record deleted behind the chain's back is caught as gone.
    admin.execute("UPDATE acme.egg_collections SET crates = 12 WHERE id = %s", [record_id])
    assert verify(app, wfarm.id)["broken_at_seq"] is None
    admin.execute("SET session_replication_role = replica")
    admin.execute("DELETE FROM acme.egg_collections WHERE id = %s", [record_id])
    admin.execute("RESET session_replication_role")
    assert (
        verify(app, wfarm.id)["problem"]
        == f"{product_table} {record_id} of entry {result['broken_at_seq']} is gone"
    )


def test_registering_a_product_table_attaches_its_audit_trigger_once(owner, product_table):
    triggers = owner.execute(
        "SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'acme.egg_collections'::regclass "
        "AND tgname LIKE '%audited'"
    ).fetchall()
    assert triggers == [("egg_collections_is_audited", "A")]
    # Re-registering (or a re-install, which attaches every registered table again) keeps one trigger.
    call(
        owner, "register_record_type", name="egg_collection", **{"class": "routine"}, description="Eggs",
        target_schema="acme", target_table="egg_collections", input_schema=Jsonb(records.EGGS),
    )  # fmt: skip
    assert owner.execute(
        "SELECT count(*) FROM pg_trigger "
        "WHERE tgrelid = 'acme.egg_collections'::regclass AND tgname LIKE '%audited'"
    ).fetchone() == (1,)


# -- who may, and bad input, as the application role ---------------------------------------------------
def test_only_the_farm_owner_verifies_their_own_farm(app, two_farms):
    a, b = two_farms
    add_member(app, a, "mona", "manager")
    with raises_sqlstate("OF001"):
        row(app, "verify_audit")
    with raises_sqlstate("OF001"):
        row(app, "audit_head", farm_id=a)
    with tenant(app, a, "mona"), raises_sqlstate("OF003"):
        row(app, "verify_audit")
    with tenant(app, a, "alice"), raises_sqlstate("OF002"):
        row(app, "verify_audit", farm_id=b)
    with tenant(app, a, "alice"), raises_sqlstate("OF002"):
        row(app, "audit_head", farm_id=b)
    with tenant(app, a, "alice"):
        rows = call(app, "verify_audit")  # NULL = the current farm
    assert [r["farm_id"] for r in rows] == [a]


@pytest.mark.parametrize(
    "trusted",
    [
        {"trusted_seq": 1},
        {"trusted_hash": "0" * 64},
        {"trusted_seq": 0, "trusted_hash": "0" * 64},
        {"trusted_seq": -5, "trusted_hash": "0" * 64},
        {"trusted_seq": 1, "trusted_hash": "xyz"},
        {"trusted_seq": 1, "trusted_hash": "A" * 64},
        {"trusted_seq": 1, "trusted_hash": "0" * 100_000},
        {"trusted_seq": 1, "trusted_hash": "0" * 63 + "\n"},
    ],
)
def test_a_malformed_trusted_head_is_refused(app, farm, trusted):
    with tenant(app, farm, "alice"), raises_sqlstate("OF006"):
        row(app, "verify_audit", **trusted)


def test_the_package_owner_verifies_every_farm(app, owner, two_farms):
    a, b = two_farms
    grant(app, a, 5)
    rows = call(owner, "verify_audit")
    assert {r["farm_id"] for r in rows} >= {a, b}
    assert all(r["broken_at_seq"] is None for r in rows)
    assert row(owner, "audit_head", farm_id=b)["seq"] == 1
    with raises_sqlstate("OF006"):
        row(owner, "verify_audit", trusted_seq=1, trusted_hash="0" * 64)  # which farm?
    with raises_sqlstate("OF002"):
        row(owner, "audit_head", farm_id="00000000-0000-0000-0000-000000000000")


def test_the_log_is_append_only_and_sealed_only_by_the_package(app, owner, admin, maintainer, busy):
    farm = busy["farm"]
    head(app, farm)
    for sql in (
        "UPDATE farmops.audit_log SET action = 'x'",
        "DELETE FROM farmops.audit_log",
        "INSERT INTO farmops.audit_log SELECT * FROM farmops.audit_log LIMIT 1",
        "INSERT INTO farmops._audit_pending (farm_id, actor, action, object_table, object_id) "
        "VALUES (gen_random_uuid(), 'x', 'x', 'x', 'x')",
        "TRUNCATE farmops.audit_log",
    ):
        with tenant(app, farm, "alice"), raises_sqlstate("42501", sql):
            app.execute(sql)
    for sql in ("UPDATE farmops.audit_log SET action = 'x'", "DELETE FROM farmops.audit_log"):
        with raises_sqlstate("42501", sql):
            owner.execute(sql)
    with raises_sqlstate("OF107"):
        admin.execute("UPDATE farmops.audit_log SET action = 'x'")
    with raises_sqlstate("OF107"):
        admin.execute("TRUNCATE farmops.audit_log")
    with raises_sqlstate("42501"):
        value(app, "seal_audit")
    reserve(app, farm)
    assert value(maintainer, "seal_audit") == 1


def test_a_farm_reads_only_its_own_entries(app, two_farms):
    a, b = two_farms
    grant(app, a, 5)
    grant(app, b, 5, user="bob")
    head(app, a)
    head(app, b, "bob")
    with tenant(app, a, "alice"):
        farms = {r[0] for r in app.execute("SELECT farm_id FROM farmops.audit_log").fetchall()}
        subjects = {r[0] for r in app.execute("SELECT farm_id FROM farmops.subjects").fetchall()}
    assert farms == {a} and subjects == {a}
    assert app.execute("SELECT count(*) FROM farmops.audit_log").fetchone()[0] == 0  # no context, no rows


# -- concurrency ---------------------------------------------------------------------------------------------
def test_many_writers_and_sealers_lose_nothing_and_leave_no_gap(app, admin, connect, funded):
    farm = funded
    grant(app, farm, 10_000)
    writers = [connect("app") for _ in range(6)]
    sealers = [connect("maintainer") for _ in range(2)]

    def write(conn):
        for _ in range(15):
            row(conn, "reserve_run", farm_id=farm, user_id="alice", feature="chat", model="m", credits=1)
        return True

    def seal(conn):
        total = 0
        for _ in range(20):
            total += value(conn, "seal_audit")
        return total

    results = concurrently([lambda c=c: write(c) for c in writers] + [lambda c=c: seal(c) for c in sealers])
    assert all(r is True or isinstance(r, int) for r in results), results
    h = head(app, farm)
    seqs = [
        r[0]
        for r in admin.execute("SELECT seq FROM farmops.audit_log WHERE farm_id = %s ORDER BY seq", [farm])
    ]
    assert seqs == list(range(1, h["seq"] + 1))
    reserved = admin.execute(
        "SELECT count(*) FROM farmops.audit_log WHERE farm_id = %s AND action = 'run.reserved'", [farm]
    ).fetchone()[0]
    runs = admin.execute("SELECT count(*) FROM farmops.ai_runs WHERE farm_id = %s", [farm]).fetchone()[0]
    assert reserved == runs == 6 * 15
    assert admin.execute("SELECT count(*) FROM farmops._audit_pending").fetchone()[0] == 0
    assert verify(app, farm)["broken_at_seq"] is None


def test_an_open_transaction_holds_back_queued_entries_not_committed_legs(app, admin, connect, two_farms):
    a, b = two_farms
    grant(app, a, 5)
    grant(app, b, 5, user="bob")
    sealed = head(app, a)["seq"]
    late = connect("app", autocommit=False)  # a reservation in farm B, not yet committed
    late.execute("SELECT farmops.begin_tenant(%s, 'bob')", [b])
    late.execute("SELECT farmops.reserve_credits(p_feature => 'chat', p_model => 'm', p_credits => 1)")
    add_member(app, a, "dave", "worker")  # a queued entry, committed while B's transaction is open
    reserve(app, a)  # a ledger leg, committed too
    # The leg is linked at once: a farm's legs commit in seq order (its farm row lock), so none can
    # still appear below it. The queued entry was written after the oldest running transaction
    # began: something older could still be queued, so it waits.
    assert head(app, a)["seq"] == sealed + 1
    late.commit()
    assert head(app, a)["seq"] == sealed + 2
    assert [e[1] for e in entries(admin, a)][-2:] == ["run.reserved", "member.added"]
    assert head(app, b, "bob")["seq"] == 3  # member.added, ledger.grant, run.reserved
    assert verify(app, a)["broken_at_seq"] is None and verify(app, b, "bob")["broken_at_seq"] is None


def test_a_seal_in_progress_takes_no_lock_on_the_farm_row(app, connect, funded):
    # A reservation debits the farm row; a seal that share-locked it (a foreign key to farms)
    # made every debit during the seal write a MultiXact: the hot farm lost half its throughput.
    # (A person's first entry creates their subject row, which references the farm: once.)
    head(app, funded)
    reserve(app, funded)
    reserve(app, funded)
    sealer = connect("maintainer", autocommit=False)
    assert value(sealer, "seal_audit") >= 2  # sealed, not yet committed
    other = connect("admin", autocommit=False)
    # FOR UPDATE conflicts with every row lock, FOR KEY SHARE included: nothing is held.
    other.execute("SELECT FROM farmops.farms WHERE id = %s FOR UPDATE NOWAIT", [funded])
    other.rollback()
    sealer.commit()
    assert verify(app, funded)["broken_at_seq"] is None


def test_the_audit_helpers_are_private(app, funded):
    for sql in (
        "SELECT farmops._audit_relation('note_records')",
        "SELECT farmops._pii_keep_kinds(%s)",
        "SELECT farmops._pii_keep_kinds(%s, '{}'::jsonb)",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege), tenant(app, funded, "alice"):
            app.execute(sql, [funded] if "%s" in sql else None)


def test_the_maintainer_seals_every_farm(app, admin, two_farms):
    a, b = two_farms
    grant(app, a, 5)
    grant(app, b, 5, user="bob")
    with as_maintainer(app) as job:
        sealed = value(job, "seal_audit")
    assert sealed == 4  # two member.added, two ledger.grant
    assert admin.execute("SELECT count(*) FROM farmops._audit_pending").fetchone()[0] == 0


def test_an_extended_reservation_still_verifies(app, admin, funded):
    run = reserve(app, funded, credits=5)
    with tenant(app, funded, "alice"):
        call(app, "extend_reservation", run_id=run["id"], credits=3)
    result = verify(app, funded)
    assert result["broken_at_seq"] is None, result
    assert [e[1] for e in entries(admin, funded)][-2:] == ["run.reserved", "ledger.extend"]
