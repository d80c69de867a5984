"""Retrieval schema: the one dimension setting, RLS on every tenant table, comments everywhere."""

from __future__ import annotations

import psycopg
import pytest
from support import raises_sqlstate, server_dsn

from farmops_client import migrate as migrations

TABLES = ["documents", "embeddings", "global_documents", "global_embeddings", "ai_run_retrievals"]


def test_dimension_is_one_setting_read_from_the_column(app, admin):
    assert app.execute("SELECT farmops.embedding_dimension()").fetchone()[0] == 1024
    typmods = admin.execute(
        "SELECT attrelid::regclass::text, atttypmod FROM pg_attribute "
        "WHERE attrelid IN ('farmops.embeddings'::regclass, 'farmops.global_embeddings'::regclass) "
        "AND attname = 'embedding' ORDER BY 1"
    ).fetchall()
    assert typmods == [("farmops.embeddings", 1024), ("farmops.global_embeddings", 1024)]


def _fresh_database(admin, name):
    admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.execute(f"CREATE DATABASE {name}")
    return psycopg.connect(server_dsn(name), autocommit=True)


def test_a_dba_can_install_with_another_dimension(admin):
    name = "farmops_dim_test"
    try:
        with _fresh_database(admin, name) as conn:
            conn.execute("SET farmops.embedding_dimension = 8")
            migrations.migrate(conn)
            assert conn.execute("SELECT farmops.embedding_dimension()").fetchone()[0] == 8
            farm = conn.execute("SELECT farmops.create_farm('F', 'u')").fetchone()[0]
            with conn.transaction():
                conn.execute("SELECT farmops.begin_tenant(%s, 'u')", [farm])
                with raises_sqlstate("OF301"), conn.transaction():
                    conn.execute("SELECT * FROM farmops.search(p_query => %s::public.vector)", ["[1,0,0]"])
                conn.execute(
                    "SELECT farmops.ingest_document(p_title => 't', p_content => 'c', p_chunks => ARRAY['a'],"
                    " p_embeddings => ARRAY['[1,0,0,0,0,0,0,0]'::public.vector], p_model => 'm')"
                )
                rows = conn.execute(
                    "SELECT content FROM farmops.search(p_query => '[1,1,0,0,0,0,0,0]')"
                ).fetchall()
                assert rows == [("a",)]
            # Re-running migrate with another setting changes nothing: the column is the setting.
            conn.execute("SET farmops.embedding_dimension = 16")
            migrations.migrate(conn)
            assert conn.execute("SELECT farmops.embedding_dimension()").fetchone()[0] == 8
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.mark.parametrize("bad", ["0", "2001", "-5"])
def test_an_impossible_dimension_is_refused_at_install(admin, bad):
    name = "farmops_dim_bad"
    try:
        with _fresh_database(admin, name) as conn:
            conn.execute(f"SET farmops.embedding_dimension = '{bad}'")
            with raises_sqlstate("OF006"):
                migrations.migrate(conn)
            assert conn.execute("SELECT to_regclass('farmops.embeddings')").fetchone()[0] is None
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_rls_is_enabled_and_forced_on_every_retrieval_table(admin):
    rows = admin.execute(
        "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
        "WHERE relnamespace = 'farmops'::regnamespace AND relname = ANY(%s) ORDER BY relname",
        [TABLES],
    ).fetchall()
    assert rows == [(t, True, True) for t in sorted(TABLES)]


def test_every_retrieval_table_and_function_has_a_comment(admin):
    missing = admin.execute(
        """SELECT c.relname FROM pg_class c
           WHERE c.relnamespace = 'farmops'::regnamespace AND c.relkind = 'r' AND c.relname = ANY(%s)
             AND obj_description(c.oid, 'pg_class') IS NULL
           UNION ALL
           SELECT p.proname FROM pg_proc p
           WHERE p.pronamespace = 'farmops'::regnamespace AND obj_description(p.oid, 'pg_proc') IS NULL""",
        [TABLES],
    ).fetchall()
    assert missing == []


def test_search_lends_its_private_helpers_and_pins_its_search_path(admin):
    rows = admin.execute(
        "SELECT proname, prosecdef, proconfig FROM pg_proc WHERE pronamespace = 'farmops'::regnamespace "
        "AND proname IN ('search', '_farm_search_candidates', '_global_search_candidates', "
        "'_global_walk_missed') ORDER BY proname"
    ).fetchall()
    assert [r[0] for r in rows] == ["_global_search_candidates", "_global_walk_missed", "search"]
    for name, secdef, config in rows:
        # search() is the definer (its helpers are private); the helpers run as their caller.
        assert secdef is (name == "search"), name
        # pg_catalog, pgvector's schema (public here), pg_temp: kept FROM CURRENT (bootstrap.sql).
        assert any(
            p in config
            for p in ("search_path=pg_catalog, pg_temp", "search_path=pg_catalog, public, pg_temp")
        ), name
