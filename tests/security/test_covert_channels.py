"""Covert channels an application login could read about other farms, reproduced as the
application role: planner tricks and statistics counters over indexes that reach other farms'
rows, ids drawn from one identity for every farm, and lock keys any session can take.

Each probe runs with no tenant context (or in the attacker's own farm) while the victim farm
has the rows the probe looks for; RLS already hides the rows, the point is that nothing else
about them shows either.
"""

from __future__ import annotations

import threading
import uuid

import psycopg
import pytest
from support import create_farm, sqlstate_of, tenant

DIM = 1024
MODEL = "amazon.titan-embed-text-v2:0"
VICTIM_OWNER = "bown-victim"

# The planner tricks of the red-team report: push every query onto an index.
PLANNER_TRICKS = [
    ("enable_seqscan", "off"),
    ("enable_bitmapscan", "off"),
    ("enable_sort", "off"),
]

# Known exceptions (index name -> why), each written down in README. None since migration 0065
# dropped the all-farm HNSW graph of the farm embeddings (farms are searched exactly).
NOT_FARM_LEADING: dict[str, str] = {}

TENANT_INDEXES = """
    SELECT c.relname AS table_name, i.relname AS index_name, pg_get_indexdef(i.oid) AS definition,
        x.indkey[0] = (
            SELECT a.attnum FROM pg_attribute AS a WHERE a.attrelid = c.oid AND a.attname = 'farm_id'
        ) AS leads_with_farm_id
    FROM pg_index AS x
    JOIN pg_class AS c ON c.oid = x.indrelid
    JOIN pg_class AS i ON i.oid = x.indexrelid
    WHERE c.relnamespace = 'farmops'::regnamespace
        AND EXISTS (SELECT FROM pg_attribute AS a WHERE a.attrelid = c.oid AND a.attname = 'farm_id'
                    AND NOT a.attisdropped)
    ORDER BY 1, 2
"""


def vec(*components: float) -> str:
    return "[" + ",".join(repr(float(x)) for x in list(components) + [0.0] * (DIM - len(components))) + "]"


def apply_tricks(conn: psycopg.Connection, extra: tuple[tuple[str, str], ...] = ()) -> None:
    for name, value in (*PLANNER_TRICKS, *extra):
        conn.execute("SELECT set_config(%s, %s, false)", [name, value])


def explain(conn: psycopg.Connection, query: str, params=None) -> str:
    rows = conn.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + query, params).fetchall()
    return "\n".join(r[0] for r in rows)


def idx_tup_fetch(conn: psycopg.Connection, table: str) -> int:
    return conn.execute(
        "SELECT coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables WHERE relid = %s::regclass",
        [f"farmops.{table}"],
    ).fetchone()[0]


@pytest.fixture
def victim(app, owner, admin):
    """Farm B with what the red-team probed for: a member id, a live run with a deadline, and
    lineage rows naming a global chunk, a pending draft. Returns (farm id, global chunk id, run id)."""
    farm_b = create_farm(app, "Victim farm", VICTIM_OWNER)
    owner.execute(
        "SELECT farmops.ingest_global_document(p_title => 'Vaccination', p_content => 'vaccinate at day 7',"
        " p_chunks => ARRAY['vaccinate at day 7'], p_embeddings => ARRAY[%s::vector], p_model => %s)",
        [vec(1.0), MODEL],
    )
    chunk = owner.execute("SELECT id FROM farmops.global_embeddings").fetchone()[0]
    with tenant(app, farm_b, VICTIM_OWNER):
        app.execute("SELECT farmops.grant_credits(%s, 100, 'probe')", [farm_b])
        run_id = app.execute("SELECT id FROM farmops.reserve_credits('chat', 'm', 5)").fetchone()[0]
        for _ in range(3):
            app.execute(
                "SELECT * FROM farmops.search_for_run(p_run_id => %s, p_query => %s::vector, p_k => 1)",
                [run_id, vec(1.0)],
            ).fetchall()
    admin.execute(  # a pending draft with its deadline (setup: inserted directly)
        "INSERT INTO farmops.assistant_drafts (farm_id, ai_run_id, record_type, payload, created_by)"
        " VALUES (%s, %s, 'sale', '{}', 'bot')",
        [farm_b, run_id],
    )
    # Statistics as autovacuum would leave them: without them the planner happens to prefer the
    # primary key, and the probes would pass by luck rather than by the indexes' shape.
    admin.execute("ANALYZE")
    return farm_b, chunk, run_id


def test_every_index_of_a_tenant_table_leads_with_farm_id(admin):
    rows = admin.execute(TENANT_INDEXES).fetchall()
    assert rows, "no tenant table indexes found: the catalog query is wrong"
    offenders = [
        f"{table}.{index}: {definition}"
        for table, index, definition, leads in rows
        if not leads and index not in NOT_FARM_LEADING
    ]
    assert offenders == []
    # The exception list holds only what still exists and still needs it.
    stale = set(NOT_FARM_LEADING) - {index for _, index, _, leads in rows if not leads}
    assert stale == set()


PROBES = [
    # Member ids of other farms, by prefix (the red-team recovered an owner id in 129 probes).
    (
        "farm_members",
        "SELECT * FROM farmops.farm_members WHERE user_id >= 'bown-a' AND user_id < 'bown-z'",
        (),
    ),
    # Other farms' live runs and their deadlines.
    (
        "ai_runs",
        "SELECT * FROM farmops.ai_runs WHERE status IN ('reserved', 'running') ORDER BY expires_at",
        (),
    ),
    # Other farms' pending drafts and their deadlines.
    (
        "assistant_drafts",
        "SELECT * FROM farmops.assistant_drafts WHERE status = 'pending' ORDER BY expires_at",
        (),
    ),
    # How often other farms retrieved a global chunk.
    (
        "ai_run_retrievals",
        "SELECT * FROM farmops.ai_run_retrievals WHERE global_embedding_id = %(chunk)s",
        (),
    ),
    # The same with index-only and plain index scans turned off in turn.
    (
        "ai_run_retrievals",
        "SELECT * FROM farmops.ai_run_retrievals WHERE global_embedding_id = %(chunk)s",
        (("enable_indexonlyscan", "off"),),
    ),
    (
        "farm_members",
        "SELECT user_id FROM farmops.farm_members WHERE user_id >= 'bown-a' AND user_id < 'bown-z'",
        (("enable_indexscan", "off"), ("enable_bitmapscan", "on")),
    ),
]


@pytest.mark.parametrize(("table", "query", "extra"), PROBES)
def test_planner_tricks_show_nothing_of_another_farm(app, victim, table, query, extra):
    _farm_b, chunk, _run = victim
    apply_tricks(app, extra)
    plan = explain(app, query, {"chunk": chunk})
    assert "Rows Removed by" not in plan, plan
    # The probe's own answer is empty, of course (RLS).
    assert app.execute(query, {"chunk": chunk}).fetchall() == []


@pytest.mark.parametrize(("table", "query", "extra"), PROBES)
def test_statistics_counters_do_not_move_for_another_farms_rows(app, victim, table, query, extra):
    _farm_b, chunk, _run = victim
    apply_tricks(app, extra)
    with app.transaction():
        before = idx_tup_fetch(app, table)
        app.execute(query, {"chunk": chunk}).fetchall()
        assert idx_tup_fetch(app, table) == before


def test_a_tenant_sees_nothing_of_another_farm_through_any_table_with_the_tricks(app, victim):
    """Every tenant table, read whole in another farm's context with the tricks on: no row of the
    victim is reached (an index leading with farm_id makes the policy the index condition)."""
    farm_a = create_farm(app, "Attacker farm", "mallory")
    tables = [
        r[0]
        for r in app.execute(
            "SELECT c.relname FROM pg_class AS c WHERE c.relnamespace = 'farmops'::regnamespace "
            "AND c.relkind = 'r' AND has_table_privilege(c.oid, 'SELECT') "
            "AND EXISTS (SELECT FROM pg_attribute AS a "
            "WHERE a.attrelid = c.oid AND a.attname = 'farm_id' AND NOT a.attisdropped) ORDER BY 1"
        ).fetchall()
    ]
    assert {"farm_members", "ai_runs", "ai_run_retrievals", "credit_ledger"} <= set(tables)
    apply_tricks(app)
    with tenant(app, farm_a, "mallory"):
        for table in tables:
            plan = explain(app, f"SELECT * FROM farmops.{table}")
            assert "Rows Removed by" not in plan, (table, plan)


# -- ids ------------------------------------------------------------------------------------------


def test_no_tenant_table_draws_ids_from_one_sequence_for_all_farms(admin):
    rows = admin.execute(
        """
        SELECT c.relname, a.attname
        FROM pg_attribute AS a
        JOIN pg_class AS c ON c.oid = a.attrelid
        LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE c.relnamespace = 'farmops'::regnamespace AND c.relkind IN ('r', 'p') AND NOT a.attisdropped
            AND EXISTS (SELECT FROM pg_attribute AS f WHERE f.attrelid = c.oid AND f.attname = 'farm_id')
            AND (a.attidentity <> '' OR pg_get_expr(d.adbin, d.adrelid) LIKE '%nextval(%')
        ORDER BY 1, 2
        """
    ).fetchall()
    # farmops._audit_pending numbers entries across farms to keep their insert order; it is private
    # (no grant to the application) and its rows are moved into audit_log, numbered per farm.
    assert rows == [("_audit_pending", "id")]


def ledger_seqs(app, farm_id, user) -> list[int]:
    with tenant(app, farm_id, user):
        return [r[0] for r in app.execute("SELECT seq FROM farmops.credit_ledger ORDER BY seq").fetchall()]


def test_a_farms_ledger_numbers_count_only_its_own_rows(app, owner):
    farm_a = create_farm(app, "Farm A", "alice")
    farm_b = create_farm(app, "Farm B", "bob")
    with tenant(app, farm_a, "alice"):
        app.execute("SELECT farmops.grant_credits(%s, 50, 'first')", [farm_a])
        run_a = app.execute("SELECT id FROM farmops.reserve_credits('chat', 'm', 5)").fetchone()[0]
    with tenant(app, farm_b, "bob"):  # farm B's activity between farm A's rows
        app.execute("SELECT farmops.grant_credits(%s, 50, 'b')", [farm_b])
        for _ in range(3):
            run_b = app.execute("SELECT id FROM farmops.reserve_credits('chat', 'm', 5)").fetchone()[0]
            app.execute("SELECT farmops.settle_run(%s, 'succeeded', 2)", [run_b])
    with tenant(app, farm_a, "alice"):
        app.execute("SELECT farmops.settle_run(%s, 'succeeded', 9)", [run_a])  # settle_charge leg
        app.execute("SELECT farmops.grant_credits(%s, 5, 'second')", [farm_a])
        assert app.execute("SELECT ledger_seq FROM farmops.farms").fetchone()[0] == 4
    assert ledger_seqs(app, farm_a, "alice") == [1, 2, 3, 4]
    assert ledger_seqs(app, farm_b, "bob") == [1, 2, 3, 4, 5, 6, 7]
    assert owner.execute("SELECT * FROM farmops.check_invariants()").fetchall() == []


def test_expired_refunds_take_the_farms_next_number(app, owner):
    farm_a = create_farm(app, "Farm A", "alice")
    with tenant(app, farm_a, "alice"):
        app.execute("SELECT farmops.grant_credits(%s, 50, 'g')", [farm_a])
        app.execute("SELECT farmops.reserve_credits('chat', 'm', 5, p_ttl => '1 millisecond')")
    owner.execute("SELECT pg_sleep(0.01)")  # past the 1 ms deadline
    assert owner.execute("SELECT farmops.expire_reservations()").fetchone()[0] == 1
    with tenant(app, farm_a, "alice"):
        rows = app.execute("SELECT seq, kind FROM farmops.credit_ledger ORDER BY seq").fetchall()
    assert rows == [(1, "grant"), (2, "reserve"), (3, "expire_refund")]
    assert owner.execute("SELECT * FROM farmops.check_invariants()").fetchall() == []


def test_autonomy_history_is_numbered_per_farm_and_evals_and_lineage_have_opaque_ids(app, victim):
    farm_b, _chunk, run_b = victim
    farm_a = create_farm(app, "Farm A", "alice")
    for tier in ("suggest", "auto", "draft"):
        with tenant(app, farm_b, VICTIM_OWNER):
            app.execute("SELECT farmops.set_autonomy(p_tier => %s)", [tier])
    with tenant(app, farm_a, "alice"):
        app.execute("SELECT farmops.set_autonomy(p_tier => 'suggest')")
        assert app.execute("SELECT seq FROM farmops.autonomy_changes").fetchall() == [(1,)]
    with tenant(app, farm_b, VICTIM_OWNER):
        seqs = app.execute("SELECT seq FROM farmops.autonomy_changes ORDER BY seq").fetchall()
        assert seqs == [(1,), (2,), (3,)]
        app.execute("SELECT * FROM farmops.evaluate_run(%s, 'fine')", [run_b]).fetchall()
        for table in ("ai_evals", "ai_run_retrievals"):
            ids = app.execute(f"SELECT id FROM farmops.{table}").fetchall()
            assert ids and all(isinstance(i, uuid.UUID) for (i,) in ids), table


def test_the_global_ledger_id_is_gone(app, farm):
    with tenant(app, farm, "alice"):
        columns = app.execute(
            "SELECT array_agg(column_name::text) FROM information_schema.columns "
            "WHERE table_schema = 'farmops' AND table_name = 'credit_ledger'"
        ).fetchone()[0]
    assert "id" not in columns and "seq" in columns


# -- locks ----------------------------------------------------------------------------------------


def test_no_session_of_another_farm_can_stall_a_farms_source_replacement(app, connect, victim):
    """Farm A's session takes every lock it can reach on farm B's keys; farm B's
    replace_source_embeddings and first ingest still go through (lock_timeout, not a hang)."""
    farm_b, _chunk, _run = victim
    farm_a = create_farm(app, "Attacker farm", "mallory")
    source = uuid.uuid4()
    attacker = connect("app", autocommit=False)
    attacker.execute("SELECT farmops.begin_tenant(%s, 'mallory')", [farm_a])
    # The advisory keys the functions used to take, in every form a session can take them.
    for key in (
        f"{farm_b}|convo_summary|{source}",
        f"farmops.embedding_model:{farm_b}",
        "farmops.embedding_model:global",
    ):
        for seed in (6, 0):
            attacker.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, %s))", [key, seed])
    # Row and table locks it might try: refused outright (no privilege), never granted.
    for statement in (
        "SELECT * FROM farmops._farm_locks FOR UPDATE",
        "SELECT * FROM farmops.embeddings FOR UPDATE",
        "LOCK TABLE farmops.global_embeddings IN SHARE ROW EXCLUSIVE MODE",
        "LOCK TABLE farmops.embeddings IN SHARE ROW EXCLUSIVE MODE",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as excinfo, attacker.transaction():
            attacker.execute(statement)
        assert sqlstate_of(excinfo) == "42501"

    # Farm B, meanwhile: the first chunk of its empty index, then the replacement, twice.
    victim_conn = connect("app", autocommit=False)
    victim_conn.execute("SET lock_timeout = '3s'")
    victim_conn.execute("SELECT farmops.begin_tenant(%s, %s)", [farm_b, VICTIM_OWNER])
    for _ in range(2):
        stored = victim_conn.execute(
            "SELECT farmops.replace_source_embeddings('convo_summary', %s, ARRAY['we talked'], "
            "ARRAY[%s::vector], %s)",
            [source, vec(0.0, 1.0), MODEL],
        ).fetchone()[0]
        assert stored == 1
    victim_conn.commit()
    attacker.rollback()


def test_replacements_of_one_source_still_take_turns(db, app, farm):
    """The row lock still serialises two writers of the same source: both succeed, one after
    the other, and the chunks are the second writer's, never a mix."""
    source = uuid.uuid4()
    first = db.connect("app", autocommit=False)
    second = db.connect("app", autocommit=False)
    try:
        for conn in (first, second):
            conn.execute("SELECT farmops.begin_tenant(%s, 'alice')", [farm])
        replace = "SELECT farmops.replace_source_embeddings('convo_summary', %s, %s, %s::vector[], %s)"
        first.execute(replace, [source, ["a1", "a2"], "{" + f'"{vec(1.0)}","{vec(1.0)}"' + "}", MODEL])
        done: list[object] = []

        def write_second():
            try:
                second.execute(replace, [source, ["b1"], "{" + f'"{vec(0.0, 1.0)}"' + "}", MODEL])
                second.commit()
                done.append("ok")
            except psycopg.Error as exc:  # pragma: no cover - reported by the assert below
                done.append(exc)

        thread = threading.Thread(target=write_second)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive(), "the second writer did not wait for the first"
        first.commit()
        thread.join(10)
        assert done == ["ok"]
    finally:
        first.close()
        second.close()
    with tenant(app, farm, "alice"):
        chunks = app.execute(
            "SELECT content FROM farmops.embeddings WHERE source_id = %s ORDER BY chunk_index", [source]
        ).fetchall()
    assert chunks == [("b1",)]


# -- the one-time re-keying of existing rows ------------------------------------------------------


def test_an_upgrade_numbers_existing_ledger_rows_per_farm_in_their_old_order(empty_db):
    """A database of the pre-restructure tree with interleaved activity of two farms: migrating
    numbers each farm's ledger and autonomy rows 1, 2, 3 in their old id order, the chains still
    hold, the next row takes the next number, and the append-only guards are back in place."""
    from support import REPO
    from support.server import load_farmops

    from farmops_client import migrate as migrations

    dsn = empty_db()
    with psycopg.connect(dsn) as conn:
        migrations.migrate(conn, root=REPO / "tests" / "install" / "fixtures" / "sql_before_restructure")
        farm_a, farm_b = uuid.uuid4(), uuid.uuid4()
        conn.execute(
            "INSERT INTO farmops.farms (id, name, credit_balance) VALUES (%s, 'A', 11), (%s, 'B', 10)",
            [farm_a, farm_b],
        )
        conn.execute(
            "INSERT INTO farmops.farm_members (farm_id, user_id, role) VALUES (%s, 'alice', 'owner'),"
            " (%s, 'bob', 'owner')",
            [farm_a, farm_b],
        )
        for farm, delta, after in ((farm_a, 10, 10), (farm_b, 5, 5), (farm_a, 1, 11), (farm_b, 5, 10)):
            conn.execute(
                "INSERT INTO farmops.credit_ledger (farm_id, kind, delta, balance_after, actor)"
                " VALUES (%s, 'grant', %s, %s, 'seed')",
                [farm, delta, after],
            )
            conn.execute(
                "INSERT INTO farmops.autonomy_changes (farm_id, changed_by, old_settings, new_settings)"
                " VALUES (%s, 'seed', '{}', %s)",
                [farm, psycopg.types.json.Jsonb({"after": after})],
            )
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    load_farmops(info.get("host"), info.get("port"), "postgres", info["dbname"])  # migrate + app login

    with psycopg.connect(dsn, autocommit=True) as admin:
        for farm, afters in ((farm_a, [10, 11]), (farm_b, [5, 10])):
            assert admin.execute(
                "SELECT seq, balance_after FROM farmops.credit_ledger WHERE farm_id = %s ORDER BY seq", [farm]
            ).fetchall() == [(1, afters[0]), (2, afters[1])]
            assert admin.execute(
                "SELECT seq, (new_settings ->> 'after')::int FROM farmops.autonomy_changes WHERE farm_id = %s"
                " ORDER BY seq",
                [farm],
            ).fetchall() == [(1, afters[0]), (2, afters[1])]
        assert admin.execute("SELECT ledger_seq FROM farmops.farms ORDER BY name").fetchall() == [(2,), (2,)]
        assert admin.execute("SELECT * FROM farmops.check_invariants()").fetchall() == []
        # The guards lifted for the re-keying are all back.
        assert admin.execute(
            "SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'farmops.credit_ledger'::regclass"
            " AND tgname = 'credit_ledger_is_append_only'"
        ).fetchall() == [("credit_ledger_is_append_only", "A")]
        assert admin.execute(
            "SELECT relforcerowsecurity, has_table_privilege('farmops_owner', oid, 'UPDATE')"
            " FROM pg_class WHERE oid = 'farmops.credit_ledger'::regclass"
        ).fetchone() == (True, False)
    app_dsn = psycopg.conninfo.make_conninfo(dsn, user="farmops_test_app")
    with psycopg.connect(app_dsn, autocommit=True) as app, tenant(app, farm_a, "alice"):
        app.execute("SELECT farmops.grant_credits(%s, 1, 'after the upgrade')", [farm_a])
        assert app.execute("SELECT max(seq) FROM farmops.credit_ledger").fetchone()[0] == 3
