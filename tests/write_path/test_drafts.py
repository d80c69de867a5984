"""Drafts: who may decide, edits, the state machine (enforced even for the owner role), expiry and races.

Documented SQLSTATEs: OF003 agent/viewer deciding, OF204 draft not in this farm, OF103 not pending (or past
its TTL, or lost a race), OF202 edits that break the payload, OF107 deleting a draft, OF006 NULL draft id.
"""

import uuid

import psycopg
import pytest
from psycopg.types.json import Jsonb
from support import race, raises_sqlstate, row, sqlstate_of, tenant
from support.write_path import VALID, counts, make_farm, propose

SALE = {"item": "crates of eggs", "quantity": 10, "amount_kobo": 4_500_000, "buyer": "Mama Ngozi"}


@pytest.fixture
def draft(app, wfarm):
    return propose(app, wfarm.id, "bot", wfarm.run, "sale", SALE)[0]


def confirm(conn, farm_id, user, draft_id, edits=None):
    with tenant(conn, farm_id, user):
        done = row(conn, "confirm_draft", draft_id=draft_id, edits=None if edits is None else Jsonb(edits))
    return done["status"], done["record_id"], done["decided_by"], done["edits"]


def discard(conn, farm_id, user, draft_id, reason=None):
    with tenant(conn, farm_id, user):
        done = row(conn, "discard_draft", draft_id=draft_id, reason=reason)
    return done["status"], done["decision_reason"]


def status_of(admin, draft_id) -> str:
    return admin.execute("SELECT status FROM farmops.assistant_drafts WHERE id = %s", [draft_id]).fetchone()[
        0
    ]


def insert_overdue_draft(admin, wfarm) -> object:
    """A pending draft whose 24 h TTL has passed (inserted by the superuser: no function backdates)."""
    return admin.execute(
        "INSERT INTO farmops.assistant_drafts (farm_id, ai_run_id, record_type, payload, created_by,"
        " created_at, expires_at) VALUES (%s, %s, 'sale', %s, 'bot', now() - interval '25 hours',"
        " now() - interval '1 hour')"
        " RETURNING id",
        [wfarm.id, wfarm.run, Jsonb(SALE)],
    ).fetchone()[0]


@pytest.mark.parametrize("user", ["alice", "mia", "wes"])
def test_human_members_confirm_and_exactly_one_record_is_written(app, admin, wfarm, draft, user):
    status, record_id, decided_by, _ = confirm(app, wfarm.id, user, draft)
    assert (status, decided_by) == ("confirmed", user)
    rows = admin.execute("SELECT id, draft_id, amount_kobo FROM farmops.sale_records").fetchall()
    assert rows == [(record_id, draft, 4_500_000)]


@pytest.mark.parametrize("user", ["bot", "vic"])
def test_agent_and_viewer_may_not_confirm_or_discard(app, admin, wfarm, draft, user):
    """The agent confirming its own draft (bot created it) is refused, as is a viewer."""
    before = counts(admin)
    for action in (confirm, discard):
        with raises_sqlstate("OF003"):
            action(app, wfarm.id, user, draft)
    assert counts(admin) == before
    assert status_of(admin, draft) == "pending"


def test_no_tenant_context_is_refused(app, admin, draft):
    for sql in (
        "SELECT farmops.confirm_draft(p_draft_id => %s)",
        "SELECT farmops.discard_draft(p_draft_id => %s)",
    ):
        with raises_sqlstate("OF001"):
            app.execute(sql, [draft])
    assert status_of(admin, draft) == "pending"


def test_other_farms_drafts_are_not_found(app, admin, wfarm, draft):
    other = make_farm(app, admin, "Farm B", "bob")
    for action in (confirm, discard):
        for draft_id in (draft, uuid.uuid4()):
            with raises_sqlstate("OF204"):
                action(app, other.id, "bob", draft_id)
    assert status_of(admin, draft) == "pending"
    with tenant(app, other.id, "bob"):
        assert app.execute("SELECT count(*) FROM farmops.assistant_drafts").fetchone()[0] == 0
    with tenant(app, wfarm.id, "vic"):  # even a viewer sees its own farm's drafts
        assert app.execute("SELECT count(*) FROM farmops.assistant_drafts").fetchone()[0] == 1


def test_null_draft_id(app, wfarm):
    for action in (confirm, discard):
        with raises_sqlstate("OF006"):
            action(app, wfarm.id, "alice", None)


def test_edits_are_merged_and_revalidated(app, admin, wfarm, draft):
    edits = {"amount_kobo": 4_000_000, "buyer": None}  # null removes the optional key
    status, record_id, _, stored_edits = confirm(app, wfarm.id, "mia", draft, edits)
    assert (status, stored_edits) == ("confirmed", edits)
    sale = admin.execute(
        "SELECT amount_kobo, buyer FROM farmops.sale_records WHERE id = %s", [record_id]
    ).fetchone()
    assert sale == (4_000_000, None)
    # The proposal itself is kept as the AI made it.
    assert (
        admin.execute("SELECT payload FROM farmops.assistant_drafts WHERE id = %s", [draft]).fetchone()[0]
        == SALE
    )


@pytest.mark.parametrize(
    "edits",
    [
        {"amount_kobo": -1},
        {"amount_kobo": "lots"},
        {"item": None},  # removing a required key
        {"smuggled": 1},
        {"farm_id": str(uuid.uuid4())},
        {"item": "x" * 100_000},
        ["amount_kobo", 1],
        "amount_kobo",
    ],
)
def test_bad_edits_are_refused_and_the_draft_stays_pending(app, admin, wfarm, draft, edits):
    before = counts(admin)
    with raises_sqlstate("OF202"):
        confirm(app, wfarm.id, "alice", draft, edits)
    assert counts(admin) == before
    assert status_of(admin, draft) == "pending"


def test_terminal_states_are_final(app, admin, wfarm, draft):
    confirm(app, wfarm.id, "alice", draft)
    for action in (confirm, discard):
        with raises_sqlstate("OF103"):
            action(app, wfarm.id, "alice", draft)
    discarded = propose(app, wfarm.id, "bot", wfarm.run, "sale", SALE)[0]
    assert discard(app, wfarm.id, "wes", discarded, "  duplicate of yesterday  ") == (
        "discarded",
        "duplicate of yesterday",
    )
    with raises_sqlstate("OF103"):
        confirm(app, wfarm.id, "alice", discarded)
    assert admin.execute("SELECT count(*) FROM farmops.sale_records").fetchone()[0] == 1


def test_discard_reason_limits(app, wfarm, draft):
    with raises_sqlstate("OF006"):
        discard(app, wfarm.id, "alice", draft, "x" * 1001)
    assert discard(app, wfarm.id, "alice", draft, "Ọ̀rọ̀ 🐔") == ("discarded", "Ọ̀rọ̀ 🐔")


def test_expired_drafts_cannot_be_confirmed_and_expire_drafts_marks_them(
    app, maintainer, admin, wfarm, draft
):
    overdue = insert_overdue_draft(admin, wfarm)
    with raises_sqlstate("OF103"):
        confirm(app, wfarm.id, "alice", overdue)
    # Maintenance needs no tenant context, is idempotent and leaves fresh drafts alone.
    assert maintainer.execute("SELECT farmops.expire_drafts()").fetchone()[0] == 1
    assert maintainer.execute("SELECT farmops.expire_drafts()").fetchone()[0] == 0
    assert (status_of(admin, overdue), status_of(admin, draft)) == ("expired", "pending")
    with raises_sqlstate("OF103"):
        discard(app, wfarm.id, "alice", overdue)
    assert admin.execute("SELECT count(*) FROM farmops.sale_records").fetchone()[0] == 0


@pytest.mark.parametrize("who", ["owner", "admin"])
def test_state_machine_holds_for_the_package_owner_and_superuser(connect, app, wfarm, draft, who):
    conn = connect(who)
    confirm(app, wfarm.id, "alice", draft)
    pending = propose(app, wfarm.id, "bot", wfarm.run, "note", VALID["note"][0])[0]
    attempts = [
        (
            "UPDATE farmops.assistant_drafts SET status = 'pending', record_id = NULL, decided_at = NULL"
            " WHERE id = %s",
            [draft],
            "OF103",
        ),
        ("UPDATE farmops.assistant_drafts SET decision_reason = 'rewritten' WHERE id = %s", [draft], "OF103"),
        (
            'UPDATE farmops.assistant_drafts SET payload = \'{"body": "forged"}\' WHERE id = %s',
            [pending],
            "OF103",
        ),
        (
            "UPDATE farmops.assistant_drafts SET expires_at = expires_at + interval '1 year' WHERE id = %s",
            [pending],
            "OF103",
        ),
        (
            "UPDATE farmops.assistant_drafts SET status = 'auto_applied', record_id = gen_random_uuid(),"
            " decided_at = now(), decided_by = 'x' WHERE id = %s",
            [pending],
            "OF103",
        ),
        ("DELETE FROM farmops.assistant_drafts WHERE id = %s", [pending], "OF107"),
        (
            "INSERT INTO farmops.assistant_drafts (farm_id, ai_run_id, record_type, payload, status,"
            " created_by, decided_by, decided_at, record_id)"
            " VALUES (%s, %s, 'note', '{}', 'confirmed', 'bot', 'bot', now(), gen_random_uuid())",
            [wfarm.id, wfarm.run],
            "OF103",
        ),
        ("TRUNCATE farmops.assistant_drafts CASCADE", None, "OF107"),
    ]
    for sql, params, sqlstate in attempts:
        with raises_sqlstate(sqlstate, sql):
            conn.execute(sql, params)
    assert [status_of(conn, d) for d in (draft, pending)] == ["confirmed", "pending"]


def test_the_app_cannot_write_drafts_or_records_directly(app, wfarm, draft):
    attempts = [
        ("UPDATE farmops.assistant_drafts SET status = 'discarded' WHERE id = %s", [draft]),
        (
            "INSERT INTO farmops.sale_records (farm_id, created_by, item, quantity, amount_kobo)"
            " VALUES (%s, 'bot', 'x', 1, 1)",
            [wfarm.id],
        ),
        (
            "INSERT INTO farmops.assistant_drafts (farm_id, ai_run_id, record_type, payload, created_by)"
            " VALUES (%s, %s, 'note', '{}', 'bot')",
            [wfarm.id, wfarm.run],
        ),
    ]
    for sql, params in attempts:
        with pytest.raises(psycopg.errors.InsufficientPrivilege), tenant(app, wfarm.id, "alice"):
            app.execute(sql, params)


def test_one_record_per_draft_even_if_the_functions_were_bypassed(owner, app, wfarm, draft):
    """The schema backstop: UNIQUE (farm_id, draft_id) on every record table."""
    confirm(app, wfarm.id, "alice", draft)
    with pytest.raises(psycopg.errors.UniqueViolation):
        owner.execute(
            "INSERT INTO farmops.sale_records (farm_id, draft_id, created_by, item, quantity, amount_kobo)"
            " VALUES (%s, %s, 'mallory', 'x', 1, 1)",
            [wfarm.id, draft],
        )


def test_records_cannot_point_at_another_farms_draft(owner, app, admin, wfarm, draft):
    """Composite FK (farm_id, draft_id): a farm-B record can never reference farm A's draft."""
    other = make_farm(app, admin, "Farm B", "bob")
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        owner.execute(
            "INSERT INTO farmops.sale_records (farm_id, draft_id, created_by, item, quantity, amount_kobo)"
            " VALUES (%s, %s, 'mallory', 'x', 1, 1)",
            [other.id, draft],
        )


# --- races: one connection per thread, lined up by a barrier ------------------------------------------


def outcome_codes(results) -> list:
    return sorted("ok" if not isinstance(r, Exception) else getattr(r, "sqlstate", repr(r)) for r in results)


def test_racing_confirmers_write_exactly_one_record(connect, admin, wfarm, draft):
    users = ["alice", "mia", "wes", "alice"]
    results = race(connect, [lambda c, u=u: confirm(c, wfarm.id, u, draft) for u in users])
    assert outcome_codes(results) == ["OF103", "OF103", "OF103", "ok"]
    winner = next(r for r in results if not isinstance(r, Exception))
    rows = admin.execute("SELECT id, draft_id FROM farmops.sale_records").fetchall()
    assert rows == [(winner[1], draft)]
    assert admin.execute(
        "SELECT status, record_id FROM farmops.assistant_drafts WHERE id = %s", [draft]
    ).fetchone() == (
        "confirmed",
        winner[1],
    )


def test_confirm_racing_discard_has_exactly_one_outcome(connect, admin, wfarm, app):
    for _ in range(3):
        draft_id = propose(app, wfarm.id, "bot", wfarm.run, "sale", SALE)[0]
        results = race(
            connect,
            [
                lambda c, d=draft_id: confirm(c, wfarm.id, "alice", d),
                lambda c, d=draft_id: discard(c, wfarm.id, "mia", d),
                lambda c, d=draft_id: confirm(c, wfarm.id, "wes", d),
            ],
        )
        assert outcome_codes(results) == ["OF103", "OF103", "ok"]
        status = status_of(admin, draft_id)
        records = admin.execute(
            "SELECT count(*) FROM farmops.sale_records WHERE draft_id = %s", [draft_id]
        ).fetchone()[0]
        assert (status, records) in (("confirmed", 1), ("discarded", 0))


def test_expiry_racing_humans_on_an_overdue_draft(connect, admin, wfarm):
    overdue = insert_overdue_draft(admin, wfarm)

    def expire(c):
        return c.execute("SELECT farmops.expire_drafts()").fetchone()[0]

    results = race(
        connect,
        [
            expire,
            expire,
            lambda c: discard(c, wfarm.id, "mia", overdue),
            lambda c: confirm(c, wfarm.id, "alice", overdue),
        ],
        who=["maintainer", "maintainer", "app", "app"],
    )
    assert sqlstate_of(results[3]) == "OF103"  # never confirmable
    expired_count = results[0] + results[1]
    discarded = not isinstance(results[2], Exception)
    # Exactly one of the expirers or the discarder decided it; the others changed nothing.
    assert expired_count + int(discarded) == 1
    assert status_of(admin, overdue) == ("discarded" if discarded else "expired")
    assert admin.execute("SELECT count(*) FROM farmops.sale_records").fetchone()[0] == 0


def test_concurrent_expirers_expire_each_draft_once(connect, admin, wfarm):
    overdue = [insert_overdue_draft(admin, wfarm) for _ in range(20)]
    results = race(
        connect,
        [lambda c: c.execute("SELECT farmops.expire_drafts()").fetchone()[0]] * 4,
        who=["maintainer"] * 4,
    )
    assert all(isinstance(r, int) for r in results), results
    assert sum(results) == len(overdue)
    assert {status_of(admin, d) for d in overdue} == {"expired"}
