"""A farm's draft TTL (farms.draft_ttl, farmops.set_draft_ttl) and the NOTIFY of new drafts.

Documented SQLSTATEs: OF003 a non-owner setting the TTL, OF006 a TTL NULL or outside 5 minutes..30
days, OF001 no tenant context, OF002 not a member.
"""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from support import concurrently, raises_sqlstate, tenant, value
from support.write_path import VALID, make_farm, propose

TASK = VALID["task"][0]


def set_ttl(conn, farm_id, user, ttl):
    with tenant(conn, farm_id, user):
        return value(conn, "set_draft_ttl", ttl=ttl)


def lifetime(admin, draft_id) -> dt.timedelta:
    return admin.execute(
        "SELECT expires_at - created_at FROM farmops.assistant_drafts WHERE id = %s", [draft_id]
    ).fetchone()[0]


def test_default_ttl_is_24_hours(app, admin, wfarm):
    draft_id = propose(app, wfarm.id, "bot", wfarm.run, "task", TASK)[0]
    assert lifetime(admin, draft_id) == dt.timedelta(hours=24)


def test_owner_sets_the_ttl_of_new_drafts_and_the_change_is_recorded(app, admin, wfarm):
    old = propose(app, wfarm.id, "bot", wfarm.run, "task", TASK)[0]
    assert set_ttl(app, wfarm.id, "alice", dt.timedelta(hours=2)) == dt.timedelta(hours=2)
    new = propose(app, wfarm.id, "bot", wfarm.run, "task", TASK)[0]
    assert lifetime(admin, new) == dt.timedelta(hours=2)
    assert lifetime(admin, old) == dt.timedelta(hours=24)  # drafts already made keep theirs
    history = admin.execute(
        "SELECT seq, changed_by, old_settings, new_settings FROM farmops.autonomy_changes WHERE farm_id = %s",
        [wfarm.id],
    ).fetchall()
    assert history == [(1, "alice", {"draft_ttl": "24:00:00"}, {"draft_ttl": "02:00:00"})]
    set_ttl(app, wfarm.id, "alice", dt.timedelta(hours=2))  # no change: nothing appended
    assert admin.execute("SELECT count(*) FROM farmops.autonomy_changes").fetchone()[0] == 1


def test_other_farms_keep_their_ttl(app, admin, wfarm):
    other = make_farm(app, admin, "Farm B", "bob")
    set_ttl(app, wfarm.id, "alice", dt.timedelta(minutes=5))
    draft_id = propose(app, other.id, "bot", other.run, "task", TASK)[0]
    assert lifetime(admin, draft_id) == dt.timedelta(hours=24)
    ttls = dict(admin.execute("SELECT id, draft_ttl FROM farmops.farms").fetchall())
    assert ttls == {wfarm.id: dt.timedelta(minutes=5), other.id: dt.timedelta(hours=24)}


@pytest.mark.parametrize("user", ["mia", "wes", "vic", "bot"])
def test_only_the_owner_sets_the_ttl(app, wfarm, user):
    with raises_sqlstate("OF003"):
        set_ttl(app, wfarm.id, user, dt.timedelta(hours=1))


@pytest.mark.parametrize(
    "ttl",
    [None, dt.timedelta(0), dt.timedelta(minutes=4, seconds=59), dt.timedelta(days=30, seconds=1),
     dt.timedelta(hours=-1), dt.timedelta(days=999_999)],
)  # fmt: skip
def test_bad_ttls_are_refused(app, admin, wfarm, ttl):
    with raises_sqlstate("OF006"):
        set_ttl(app, wfarm.id, "alice", ttl)
    assert admin.execute("SELECT draft_ttl FROM farmops.farms WHERE id = %s", [wfarm.id]).fetchone()[0] == (
        dt.timedelta(hours=24)
    )


def test_odd_strings_are_not_intervals(app, wfarm):
    with tenant(app, wfarm.id, "alice"), pytest.raises(psycopg.errors.InvalidDatetimeFormat):
        app.execute("SELECT farmops.set_draft_ttl(%s::text::interval)", ["x" * 10_000])


def test_ttl_needs_a_member_context(app, wfarm):
    with raises_sqlstate("OF001"):
        value(app, "set_draft_ttl", ttl=dt.timedelta(hours=1))
    with raises_sqlstate("OF002"):
        set_ttl(app, wfarm.id, "mallory", dt.timedelta(hours=1))


def test_bounds_are_allowed(app, wfarm):
    assert set_ttl(app, wfarm.id, "alice", dt.timedelta(minutes=5)) == dt.timedelta(minutes=5)
    assert set_ttl(app, wfarm.id, "alice", dt.timedelta(days=30)) == dt.timedelta(days=30)


def test_concurrent_owners_append_one_change_each(db, app, admin, wfarm):
    ttls = [dt.timedelta(hours=h) for h in range(1, 7)]

    def change(ttl):
        with db.connect("app") as conn:
            return set_ttl(conn, wfarm.id, "alice", ttl)

    results = concurrently([lambda t=t: change(t) for t in ttls])
    assert results == ttls
    seqs = [r[0] for r in admin.execute(
        "SELECT seq FROM farmops.autonomy_changes WHERE farm_id = %s ORDER BY seq", [wfarm.id]
    ).fetchall()]  # fmt: skip
    assert seqs == list(range(1, 7))


def test_an_explicit_expiry_is_kept(admin, wfarm):
    """A superuser's backdated row (the expiry tests insert one) is not overwritten by the trigger."""
    got = admin.execute(
        "INSERT INTO farmops.assistant_drafts (farm_id, ai_run_id, record_type, payload, created_by,"
        " created_at, expires_at) VALUES (%s, %s, 'task', '{\"title\": \"t\"}', 'bot',"
        " now() - interval '2 hours', now() - interval '1 hour') RETURNING expires_at - created_at",
        [wfarm.id, wfarm.run],
    ).fetchone()[0]
    assert got == dt.timedelta(hours=1)


# -- NOTIFY -------------------------------------------------------------------------------------------------


def channel_of(conn, farm_id, user) -> str:
    with tenant(conn, farm_id, user):
        return value(conn, "draft_channel")


def listen(conn, channel: str) -> None:
    conn.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(channel)))


def received(conn, timeout: float = 0.5) -> list[tuple[str, str]]:
    return [(n.channel, n.payload) for n in conn.notifies(timeout=timeout, stop_after=None)]


def test_every_member_may_read_the_channel_of_their_farm_only(app, admin, wfarm):
    other = make_farm(app, admin, "Farm B", "bob")
    channels = {channel_of(app, wfarm.id, u) for u in ("alice", "mia", "wes", "vic", "bot")}
    assert channels == {f"farmops_drafts_{wfarm.id}"}
    assert channel_of(app, other.id, "bob") == f"farmops_drafts_{other.id}"
    with raises_sqlstate("OF001"):
        value(app, "draft_channel")
    with raises_sqlstate("OF002"):
        channel_of(app, wfarm.id, "bob")


def test_a_new_pending_draft_is_announced_on_its_farm_channel_only(connect, app, admin, wfarm):
    other = make_farm(app, admin, "Farm B", "bob")
    mine, theirs = connect("app"), connect("app")
    listen(mine, channel_of(mine, wfarm.id, "alice"))
    listen(theirs, channel_of(theirs, other.id, "bob"))
    draft_id = propose(app, wfarm.id, "bot", wfarm.run, "task", TASK)[0]
    assert received(mine) == [(f"farmops_drafts_{wfarm.id}", str(draft_id))]
    assert received(theirs, 0.2) == []


def test_rolled_back_and_auto_applied_drafts_are_not_announced(connect, app, admin, wfarm):
    listener = connect("app")
    listen(listener, channel_of(listener, wfarm.id, "alice"))
    with pytest.raises(RuntimeError), tenant(app, wfarm.id, "bot"):
        app.execute(
            "SELECT farmops.propose_write(%s, 'task', %s::jsonb)", [wfarm.run, psycopg.types.json.Jsonb(TASK)]
        )
        raise RuntimeError("roll back")
    with tenant(app, wfarm.id, "alice"):
        app.execute("SELECT farmops.set_autonomy(p_tier => 'auto', p_auto_categories => '[\"task\"]')")
    assert propose(app, wfarm.id, "bot", wfarm.run, "task", TASK)[1] == "auto_applied"
    assert received(listener, 0.3) == []
