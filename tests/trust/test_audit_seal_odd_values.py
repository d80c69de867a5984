"""The audit seal and odd person values (ADR 0018, 0019): every person value the seal meets becomes a
``farmops.subjects`` row, whose ``user_id`` is 1..256 characters. A value the seal can meet that is ''
or longer than 256 characters is keyed by ``farmops._subject_key`` ('digest:' + its sha256), so it
seals, verifies and is erased like any other; and one farm whose seal fails never stops the others.

The paths that carry such values into the seal (each with a test below):

- a person column of a product's own record table (``register_record_type``) other than
  ``created_by``, filled from the payload: a property named like a person column (``user_id``,
  ``updated_by``, ...) whose string may be '' or up to its maxLength;
- ``created_by`` of that table when the product writes its own rows: it becomes the entry's actor;
- the unsigned ``farmops.user_id`` setting of a session without a tenant context (a job's), read as
  the actor of the changes it makes (``farmops._audit_actor``): a reservation expired by the maintainer.

An actor spelled like a pseudonym ('erased:<uuid>') that is no subject of the farm (a product's own row,
or a member added before add_member refused such ids) made the seal fail too, on audit_log's foreign key
to subjects; it is now a value like any other. And a farm whose seal fails all the same (here: a broken
pending row the superuser wrote) is skipped by seal_audit() with a WARNING, the others sealed.

farmops' own person columns (ai_runs.user_id, credit_ledger.actor, every created_by, ...) are bounded
1..256 by their CHECKs, which the seal relies on for reservations (checked below too).

Everything runs as the application role, the maintainer sealing; the superuser only sets up the
product's table, writes the product's own rows and reads."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import psycopg
import pytest
from support import call, create_farm, raises_sqlstate, row, tenant, value
from support.audit import queue_the_legs_as_4f964e6, waiting
from support.credits import add_member, grant, reserve, settle, start
from support.records import product_table
from support.write_path import propose, set_autonomy

PER_ENTRY_SEAL = Path(__file__).parent / "fixtures" / "seal_per_entry_4f964e6.sql"
#: The columns both seals write (sealed_at is now(): equal inside one transaction).
COLUMNS = "seq, at, sealed_at, actor, action, object_table, object_id, detail, content_hash, prev_hash, hash"
LONG = "Okafor-" + "p" * 293  # 300 characters
#: Person values a product's person column may hold (any text), by name.
ODD = {
    "empty": "",
    "300 chars": LONG,
    "10k chars": "q" * 10_000,
    "unicode, 200 chars (800 bytes)": "\U0001f414" * 200,
    "unicode, 300 chars": "Za\u00efnab \u5f20\u4f1f " * 30,
    "a pseudonym lookalike": f"erased:{uuid.uuid4()}",
    "a malformed pseudonym": "erased:" + "-" * 36,
    "a digest lookalike": "digest:" + hashlib.sha256(b"someone else").hexdigest(),
}
#: The ones longer than a subject's user_id may be (or empty): keyed by their digest.
DIGESTED = {name for name, v in ODD.items() if not 1 <= len(v) <= 256}
#: Spelled like erasure's pseudonyms, 'erased:<subject id>', but no subject's.
LOOKALIKES = {"a pseudonym lookalike", "a malformed pseudonym"}
WHO = {"type": "string", "maxLength": 20_000, "description": "Who collected them."}


def key(v: str) -> str:
    """farmops._subject_key, in Python."""
    return v if 1 <= len(v) <= 256 else "digest:" + hashlib.sha256(v.encode()).hexdigest()


def one(conn, sql: str, params=()) -> object:
    """The single value of ``sql``."""
    return conn.execute(sql, params).fetchone()[0]


def pending(admin, farm) -> int:
    """Entries waiting for the seal: queued, and ledger legs past the farm's mark."""
    return waiting(admin, farm)


def chain(admin, farm) -> list[tuple]:
    return admin.execute(
        f"SELECT {COLUMNS} FROM farmops.audit_log WHERE farm_id = %s ORDER BY seq", [farm]
    ).fetchall()


def verify(app, farm, user="alice") -> dict:
    with tenant(app, farm, user):
        return row(app, "verify_audit", farm_id=farm)


def seal(maintainer, form: str) -> int:
    """seal_audit() or seal_audit(p_max_entries), as the maintainer."""
    if form == "whole":
        return value(maintainer, "seal_audit")
    return value(maintainer, "seal_audit", max_entries=1000)


@pytest.fixture
def product(admin, owner) -> str:
    """The product's table with a person column ``user_id`` its record type's payload fills."""
    return product_table(admin, owner, columns="user_id text", properties={"user_id": WHO})


@pytest.fixture
def eggs(app, wfarm, product):
    """The write-path farm, egg_collection records auto-applied: the agent's payload is written as is."""
    set_autonomy(app, wfarm.id, "alice", "auto", ["egg_collection"])
    return wfarm


def record(app, farm, who: str) -> object:
    """The agent writes an egg_collection record naming ``who`` in its person column user_id."""
    _, outcome, record_id = propose(
        app, farm.id, "bot", farm.run, "egg_collection", {"crates": 3, "user_id": who}
    )
    assert outcome == "auto_applied"
    return record_id


@pytest.fixture
def notices(maintainer) -> list:
    """(severity, message) of the notices the maintainer's session receives (read in the callback: the
    diagnostic is valid only there)."""
    got: list = []
    maintainer.add_notice_handler(lambda d: got.append((d.severity_nonlocalized, d.message_primary)))
    return got


# -- path 1: a person column of a product's record table, filled from the payload ---------------------------
@pytest.mark.parametrize("form", ["whole", "bounded"])
@pytest.mark.parametrize("name", list(ODD))
def test_a_product_records_odd_person_value_seals_and_verifies(
    app, admin, maintainer, eggs, product, name, form
):
    who = ODD[name]
    record_id = record(app, eggs, who)
    assert one(admin, f"SELECT user_id FROM {product} WHERE id = %s", [record_id]) == who
    assert seal(maintainer, form) >= 1
    assert pending(admin, eggs.id) == 0
    assert verify(app, eggs.id)["broken_at_seq"] is None
    entry = admin.execute(
        "SELECT content_hash FROM farmops.audit_log WHERE farm_id = %s AND object_table = %s "
        "AND object_id = %s",
        [eggs.id, product, str(record_id)],
    ).fetchall()
    assert len(entry) == 1
    subjects = [
        r[0] for r in admin.execute("SELECT user_id FROM farmops.subjects WHERE farm_id = %s", [eggs.id])
    ]
    if name in LOOKALIKES:  # in a person column, read as the id it spells, like every 'erased:<id>'
        assert who not in subjects
    else:
        assert key(who) in subjects
    if name in DIGESTED:
        assert who not in subjects
    # A record edited behind the chain's back is still caught: the person column is in the hash.
    admin.execute("ALTER TABLE acme.egg_collections DISABLE TRIGGER USER")
    admin.execute(f"UPDATE {product} SET user_id = user_id || 'x' WHERE id = %s", [record_id])
    broken = verify(app, eggs.id)
    assert broken["problem"] == (
        f"{product} {record_id} or entry {broken['broken_at_seq']} was changed (content_hash differs)"
    )


def test_the_per_entry_and_set_based_seals_give_the_same_hashes_for_odd_values(app, admin, eggs, product):
    for who in ODD.values():
        record(app, eggs, who)
    admin.execute(PER_ENTRY_SEAL.read_text())
    subjects = "SELECT id, user_id, created_at FROM farmops.subjects WHERE farm_id = %s"
    known = set(admin.execute(subjects, [eggs.id]).fetchall())
    with admin.transaction():
        with admin.transaction(savepoint_name="per_entry") as tx:
            queue_the_legs_as_4f964e6(admin, eggs.id)
            assert one(admin, "SELECT audit_seal_per_entry.seal_farm(%s)", [eggs.id]) > len(ODD)
            before = chain(admin, eggs.id)
            made = set(admin.execute(subjects, [eggs.id]).fetchall()) - known
            raise psycopg.Rollback(tx)
        assert {m[1] for m in made} >= {key(ODD[n]) for n in DIGESTED}
        for subject in made:  # the same subject ids for the set-based seal
            admin.execute(
                "INSERT INTO farmops.subjects (farm_id, id, user_id, created_at) VALUES (%s, %s, %s, %s)",
                [eggs.id, *subject],
            )
        assert one(admin, "SELECT farmops._seal_audit_farm(%s)", [eggs.id]) == len(before)
        after = chain(admin, eggs.id)
    admin.execute("DROP SCHEMA audit_seal_per_entry CASCADE")
    assert after == before
    assert sum(e[5] == product for e in after) == len(ODD)
    assert verify(app, eggs.id)["broken_at_seq"] is None


# -- path 2: the product writes its own rows: created_by is the entry's actor -------------------------------
@pytest.mark.parametrize("name", sorted(ODD))
def test_a_product_row_written_by_the_product_with_an_odd_creator_seals(
    app, admin, maintainer, eggs, product, name
):
    who = ODD[name]
    # The product's own code writes a row (here as the superuser): farmops' audit trigger fires all the same.
    admin.execute(f"INSERT INTO {product} (farm_id, created_by, crates) VALUES (%s, %s, 1)", [eggs.id, who])
    assert one(admin, "SELECT count(*) FROM farmops._audit_pending WHERE actor = %s", [who]) == 1
    assert seal(maintainer, "whole") >= 1
    actor = admin.execute(
        "SELECT s.user_id FROM farmops.audit_log AS l JOIN farmops.subjects AS s ON s.farm_id = l.farm_id "
        "AND s.id = l.actor WHERE l.farm_id = %s AND l.object_table = %s",
        [eggs.id, product],
    ).fetchall()
    assert actor == [(key(who),)]  # a pseudonym no subject has is a value like any other as an actor
    assert verify(app, eggs.id)["broken_at_seq"] is None


def test_a_member_whose_id_looks_like_a_pseudonym_acts_and_the_seal_goes_on(app, admin, maintainer, funded):
    # This one spells a pseudonym no subject has. add_member refuses such an id now (OF006,
    # tests/tenancy/test_tenancy.py), but an installation upgraded from before may hold one.
    member = f"erased:{uuid.uuid4()}"
    admin.execute(
        "INSERT INTO farmops.farm_members (farm_id, user_id, role) VALUES (%s, %s, 'manager')",
        [funded, member],
    )
    run = reserve(app, funded, user=member, credits=2)
    start(app, funded, run["id"], user=member)
    settle(app, funded, run["id"], user=member, credits_actual=1)
    assert seal(maintainer, "whole") >= 5
    assert pending(admin, funded) == 0
    actors = admin.execute(
        "SELECT DISTINCT s.user_id FROM farmops.audit_log AS l JOIN farmops.subjects AS s "
        "ON s.farm_id = l.farm_id AND s.id = l.actor WHERE l.farm_id = %s AND l.object_id = %s",
        [funded, str(run["id"])],
    ).fetchall()
    assert actors == [(member,)]
    assert verify(app, funded)["broken_at_seq"] is None


# -- path 3: a job's session with an odd farmops.user_id (unsigned, no tenant context) ----------------------
@pytest.mark.parametrize("who", [LONG, ODD["10k chars"]], ids=["300 chars", "10k chars"])
def test_a_job_session_with_an_odd_user_setting_seals(app, admin, maintainer, connect, funded, who):
    run = reserve(app, funded, ttl="1 millisecond")["id"]
    admin.execute("SELECT pg_sleep(0.01)")
    job = connect("maintainer")
    job.execute("SELECT set_config('farmops.user_id', %s, false)", [who])
    assert value(job, "expire_reservations") == 1
    assert one(admin, "SELECT actor FROM farmops._audit_pending WHERE action = 'run.expired'") == who
    assert seal(maintainer, "whole") >= 3
    assert one(
        admin,
        "SELECT s.user_id FROM farmops.audit_log AS l JOIN farmops.subjects AS s ON s.farm_id = l.farm_id "
        "AND s.id = l.actor WHERE l.farm_id = %s AND l.action = 'run.expired' AND l.object_id = %s",
        [funded, str(run)],
    ) == key(who)
    assert verify(app, funded)["broken_at_seq"] is None


def test_the_reservations_person_columns_are_bounded_as_the_seal_reads_them_raw(admin):
    # _seal_audit_farm joins a reservation's ai_runs.user_id and credit_ledger.actor to subjects as they are.
    for table, column in (("ai_runs", "user_id"), ("credit_ledger", "actor")):
        checks = [
            r[0]
            for r in admin.execute(
                "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint AS c WHERE c.conrelid = %s::regclass "
                "AND c.contype = 'c' AND c.conkey = ARRAY[(SELECT attnum FROM pg_attribute "
                "WHERE attrelid = %s::regclass AND attname = %s)]",
                [f"farmops.{table}", f"farmops.{table}", column],
            )
        ]
        assert f"CHECK (((char_length({column}) >= 1) AND (char_length({column}) <= 256)))" in checks, checks


def test_the_subject_key_is_the_value_or_its_digest(admin):
    for v in [*ODD.values(), "a" * 256, "a" * 257, None]:
        assert one(admin, "SELECT farmops._subject_key(%s)", [v]) == (None if v is None else key(v))
    assert (
        one(admin, "SELECT provolatile FROM pg_proc WHERE oid = 'farmops._subject_key(text)'::regprocedure")
        == "i"
    )


# -- one farm's failure stops no other farm -----------------------------------------------------------------
@pytest.mark.parametrize("form", ["whole", "bounded"])
def test_a_farm_whose_seal_fails_is_skipped_with_a_warning_and_the_others_are_sealed(
    app, admin, maintainer, notices, two_farms, form
):
    a, b = two_farms
    grant(app, a, 5)
    grant(app, b, 5, user="bob")
    reserve(app, a)
    # A broken pending entry in farm a (made by the superuser: no farmops path writes it): a reservation
    # whose object id is no run id, so a's seal raises (22P02) when it looks its run up among a's runs.
    admin.execute(
        "INSERT INTO farmops._audit_pending (farm_id, actor, action, object_table, object_id) "
        "VALUES (%s, 'alice', 'run.reserved', 'ai_runs', 'not-a-run')",
        [a],
    )
    pending_a = admin.execute(
        "SELECT * FROM farmops._audit_pending WHERE farm_id = %s ORDER BY id", [a]
    ).fetchall()
    assert seal(maintainer, form) == 2  # b's member.added and ledger.grant
    assert pending(admin, b) == 0 and len(chain(admin, b)) == 2
    # a: nothing half-written, every entry still pending, and the warning names it and the error.
    assert chain(admin, a) == []
    assert admin.execute(
        "SELECT * FROM farmops._audit_pending WHERE farm_id = %s ORDER BY id", [a]
    ).fetchall() == (pending_a)
    warnings = [message for severity, message in notices if severity == "WARNING"]
    assert len(warnings) == 1, notices
    assert warnings[0] == (
        f"audit seal of farm {a} failed (SQLSTATE 22P02: invalid input syntax for type uuid: "
        '"not-a-run"): its entries stay pending'
    )
    assert verify(app, b, "bob")["broken_at_seq"] is None
    # Repaired, a is sealed by the next call.
    admin.execute("DELETE FROM farmops._audit_pending WHERE farm_id = %s AND object_id = 'not-a-run'", [a])
    assert seal(maintainer, form) == 3  # a's member.added, ledger.grant and run.reserved
    assert verify(app, a)["broken_at_seq"] is None


def test_a_single_farms_seal_still_raises_for_the_caller_who_asked_about_it(app, admin, funded):
    reserve(app, funded)
    admin.execute(
        "INSERT INTO farmops._audit_pending (farm_id, actor, action, object_table, object_id) "
        "VALUES (%s, 'alice', 'run.reserved', 'ai_runs', 'not-a-run')",
        [funded],
    )
    with tenant(app, funded, "alice"), raises_sqlstate("22P02"):
        row(app, "audit_head", farm_id=funded)


def test_the_isolating_seal_is_private(app, maintainer, funded):
    for conn in (app, maintainer):
        with raises_sqlstate("42501"):
            conn.execute("SELECT farmops._seal_audit_farm_or_warn(%s, NULL, false)", [funded])


# -- erasure finds the subject the seal made --------------------------------------------------------------
@pytest.mark.parametrize("sealed", [True, False], ids=["after the seal", "before the seal"])
@pytest.mark.parametrize("name", ["300 chars", "10k chars", "unicode, 300 chars"])
def test_erasing_a_long_identifier_erases_the_subject_the_seal_made(
    app, admin, maintainer, eggs, product, name, sealed
):
    who = ODD[name]
    record_id = record(app, eggs, who)
    if sealed:
        seal(maintainer, "whole")
        subject = one(
            admin, "SELECT id FROM farmops.subjects WHERE farm_id = %s AND user_id = %s", [eggs.id, key(who)]
        )
    with tenant(app, eggs.id, "alice"):
        counts = value(app, "erase_member_data", user_id=who)
    if sealed:
        assert counts["subject"] == str(subject)
    subject = counts["subject"]
    assert counts[f"{product}.user_id"] == 1
    assert one(admin, f"SELECT user_id FROM {product} WHERE id = %s", [record_id]) == f"erased:{subject}"
    assert admin.execute(
        "SELECT user_id, erased_at IS NOT NULL FROM farmops.subjects WHERE farm_id = %s AND id = %s",
        [eggs.id, subject],
    ).fetchone() == (None, True)
    assert one(admin, "SELECT count(*) FROM farmops.subjects WHERE user_id = %s", [key(who)]) == 0
    assert seal(maintainer, "whole") >= 1
    assert verify(app, eggs.id)["broken_at_seq"] is None
    # Once erased, nothing names them: a second erasure is refused.
    with tenant(app, eggs.id, "alice"), raises_sqlstate("OF006"):
        value(app, "erase_member_data", user_id=who)


def test_erase_farm_erases_long_identifiers_once_and_the_chain_verifies(
    app, admin, owner, maintainer, eggs, product
):
    for name in ("300 chars", "10k chars", "empty"):
        record(app, eggs, ODD[name])
    settle(app, eggs.id, eggs.run, user="bot", credits_actual=1)  # no run in progress
    seal(maintainer, "whole")  # their subjects hold digests; erase_farm finds them by the values too
    result = value(owner, "erase_farm", farm_id=eggs.id)
    assert result["people"] >= 3
    assert one(admin, f"SELECT count(*) FROM {product} WHERE user_id !~ '^erased:[0-9a-f-]{{36}}$'") == 0
    assert one(admin, "SELECT count(*) FROM farmops.subjects WHERE farm_id = %s AND user_id IS NOT NULL "
               "AND user_id !~ '^login:'", [eggs.id]) == 0  # fmt: skip
    assert call(owner, "check_invariants", farm_id=eggs.id) == []
    [checked] = call(owner, "verify_audit", farm_id=eggs.id)
    assert checked["broken_at_seq"] is None, checked


@pytest.mark.parametrize("form", ["whole", "bounded"])
def test_sealing_many_farms_keeps_the_sealers_subtransactions_cached(app, admin, connect, form):
    # seal_audit() seals every farm in ONE transaction. A subtransaction per farm that writes would keep
    # its xid until that transaction ends, and past 64 (PGPROC_MAX_CACHED_SUBXIDS) every snapshot taken
    # in the cluster meanwhile overflows to pg_subtrans: only a failing farm costs one per farm.
    farms = [create_farm(app, f"Farm {i}", f"owner{i}") for i in range(70)]
    value(admin, "seal_audit")  # (a farm's first bounded seal creates its seal lock row in a subtransaction)
    for i, farm in enumerate(farms):
        add_member(app, farm, "wes", "worker", owner=f"owner{i}")
    sealer = connect("maintainer", autocommit=False)
    assert seal(sealer, form) == len(farms)  # one member.added each
    count, overflowed = admin.execute(
        "SELECT s.subxact_count, s.subxact_overflowed FROM pg_stat_get_backend_idset() AS b (id) "
        "CROSS JOIN LATERAL pg_stat_get_backend_subxact(b.id) AS s WHERE pg_stat_get_backend_pid(b.id) = %s",
        [sealer.info.backend_pid],
    ).fetchone()
    sealer.commit()
    assert count <= 1 and not overflowed, (count, overflowed)
