"""The record-type registry (tools for Bedrock, product-registered types) and tenant isolation of every
write-path table (RLS enabled and forced, composite foreign keys, no cross-farm reads)."""

import re

import psycopg
import pytest
from psycopg.types.json import Jsonb
from support import raises_sqlstate, row, tenant
from support.write_path import VALID, WRITE_TABLES, make_farm, propose, set_autonomy


def register(conn, name, cls, description, schema, table, input_schema):
    """farmops.register_record_type; returns the registered name."""
    found = row(
        conn,
        "register_record_type",
        name=name,
        **{"class": cls},
        description=description,
        target_schema=schema,
        target_table=table,
        input_schema=None if input_schema is None else Jsonb(input_schema),
    )
    return found["name"]


EGGS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["crates"],
    "properties": {
        "crates": {"type": "integer", "minimum": 1, "maximum": 10000, "description": "Crates collected."},
        "cracked": {"type": "boolean", "description": "Any cracked eggs?"},
    },
}


def test_tools_are_the_seeded_types_with_bedrock_ready_schemas(app):
    tools = app.execute(
        "SELECT name, class, description, input_schema FROM farmops.record_type_tools()"
    ).fetchall()
    assert {t[0]: t[1] for t in tools} == {
        "expense": "financial",
        "feed_use": "routine",
        "mortality": "destructive",
        "note": "routine",
        "sale": "financial",
        "symptom": "routine",
        "task": "routine",
        "water": "routine",
        "weight": "routine",
    }
    for name, _cls, description, schema in tools:
        assert re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", f"create_{name}")  # Bedrock's tool name rule
        assert description
        assert schema["type"] == "object" and schema["additionalProperties"] is False
        assert set(schema["required"]) <= set(schema["properties"])
        assert set(VALID[name][0]) <= set(schema["properties"])
        for prop in schema["properties"].values():
            assert prop["type"] in ("string", "integer", "number", "boolean") and prop["description"]


def test_seeded_types_pass_the_registration_checks(owner):
    """Re-registering each seeded row verbatim passes (schema subset, target columns) and changes nothing."""
    select = "SELECT name, class, description, target_schema, target_table, input_schema, date_past_days,"
    select += " date_future_days FROM farmops.record_types"
    rows = owner.execute(select).fetchall()
    for seeded in rows:
        assert register(owner, *seeded[:6]) == seeded[0]
    again = owner.execute(select).fetchall()
    assert sorted(again) == sorted(rows)


def test_a_product_registers_its_own_type_and_the_ai_writes_it(app, admin, owner):
    owner.execute(
        """CREATE TABLE farmops.egg_collections (
               farm_id uuid NOT NULL REFERENCES farmops.farms (id),
               id uuid NOT NULL DEFAULT gen_random_uuid(),
               draft_id uuid, created_by text NOT NULL, crates integer NOT NULL, cracked boolean,
               PRIMARY KEY (farm_id, id), UNIQUE (farm_id, draft_id),
               FOREIGN KEY (farm_id, draft_id) REFERENCES farmops.assistant_drafts (farm_id, id))"""
    )
    register(owner, "egg_collection", "routine", "Eggs collected", "farmops", "egg_collections", EGGS_SCHEMA)
    assert "egg_collection" in [r[0] for r in app.execute("SELECT name FROM farmops.record_type_tools()")]
    farm = make_farm(app, admin)
    set_autonomy(app, farm.id, "alice", "auto", ["egg_collection"])
    _, outcome, record_id = propose(
        app, farm.id, "bot", farm.run, "egg_collection", {"crates": 12, "cracked": False}
    )
    assert outcome == "auto_applied"
    assert admin.execute(
        "SELECT crates, cracked FROM farmops.egg_collections WHERE id = %s", [record_id]
    ).fetchone() == (
        12,
        False,
    )
    with raises_sqlstate("OF202"):
        propose(app, farm.id, "bot", farm.run, "egg_collection", {"crates": True})


def bad(schema_patch=None, prop_patch=None, drop=None):
    schema = {**EGGS_SCHEMA, "properties": {"crates": dict(EGGS_SCHEMA["properties"]["crates"])}}
    schema.update(schema_patch or {})
    schema["properties"]["crates"].update(prop_patch or {})
    for key in drop or ():
        schema["properties"]["crates"].pop(key)
    return schema


@pytest.mark.parametrize(
    ("name", "cls", "table", "schema"),
    [
        ("Eggs", "routine", "note_records", bad()),
        ("eggs-1", "routine", "note_records", bad()),
        ("e" * 49, "routine", "note_records", bad()),
        (None, "routine", "note_records", bad()),
        ("eggs", "harmless", "note_records", bad()),
        ("eggs", "routine", "no_such_table", bad()),
        ("eggs", "routine", "note_records", bad()),  # note_records has no column crates
        ("eggs", "routine", "egg_collections", bad({"additionalProperties": True})),
        ("eggs", "routine", "egg_collections", bad({"type": "array"})),
        ("eggs", "routine", "egg_collections", bad({"required": ["ghost"]})),
        ("eggs", "routine", "egg_collections", bad({"$ref": "#/x"})),
        ("eggs", "routine", "egg_collections", bad(drop=["maximum"])),
        (
            "eggs",
            "routine",
            "egg_collections",
            bad(prop_patch={"type": "string"}),
        ),  # string without maxLength
        ("eggs", "routine", "egg_collections", bad(prop_patch={"type": "array"})),
        ("eggs", "routine", "egg_collections", bad(prop_patch={"pattern": "^[0-9]+$"})),
        ("eggs", "routine", "egg_collections", bad(prop_patch={"format": "email"})),
        ("eggs", "routine", "egg_collections", bad(prop_patch={"enum": []})),
        ("eggs", "routine", "egg_collections", None),
    ],
)
def test_registration_refuses_what_the_validator_cannot_enforce(owner, name, cls, table, schema):
    owner.execute(
        "CREATE TABLE farmops.egg_collections"
        " (farm_id uuid, id uuid, draft_id uuid, created_by text, crates integer)"
    )
    with raises_sqlstate("OF006"):
        register(owner, name, cls, "d", "farmops", table, schema)
    assert owner.execute("SELECT count(*) FROM farmops.record_types").fetchone()[0] == len(VALID)


def test_the_app_cannot_register_or_edit_types(app):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        register(app, "eggs", "routine", "d", "farmops", "note_records", EGGS_SCHEMA)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app.execute("UPDATE farmops.record_types SET class = 'routine' WHERE name = 'sale'")


def test_validate_payload_is_a_dry_run_for_the_client(app):
    assert app.execute(
        "SELECT (farmops.validate_payload('sale', %s)).class", [Jsonb(VALID["sale"][0])]
    ).fetchone() == ("financial",)
    with raises_sqlstate("OF202"):
        app.execute("SELECT farmops.validate_payload('sale', '{}')")


# --- tenant isolation ---------------------------------------------------------------------------------


def test_every_write_path_table_has_forced_rls_and_a_farm_scoped_policy(admin):
    for table in WRITE_TABLES:
        enabled, forced = admin.execute(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = %s::regclass",
            [f"farmops.{table}"],
        ).fetchone()
        assert enabled and forced, table
        quals = admin.execute(
            "SELECT qual FROM pg_policies"
            " WHERE schemaname = 'farmops' AND tablename = %s AND 'farmops_app' = ANY (roles)",
            [table],
        ).fetchall()
        assert quals and all("current_farm_id()" in q[0] for q in quals), table


def test_foreign_keys_between_tenant_tables_include_farm_id(app):
    """farmops.check_tenancy() holds the rule (farm_id paired with farm_id, every tenant table)."""
    rows = app.execute("SELECT * FROM farmops.check_tenancy() WHERE problem = 'foreign_key_without_farm_id'")
    assert rows.fetchall() == []


def populate(app, admin, farm) -> None:
    """Put at least one row into every write-path table for this farm."""
    set_autonomy(app, farm.id, farm.owner, "auto", list(VALID))
    for record_type, (payload, _table) in VALID.items():
        propose(app, farm.id, "bot", farm.run, record_type, payload)
    with tenant(app, farm.id, "bot"):
        app.execute("SELECT farmops.recommend(%s, 't', 'b')", [farm.run])
        app.execute("SELECT farmops.evaluate_run(%s, 'ok')", [farm.run])
        app.execute("SELECT farmops.remember('a fact', %s)", [farm.run])
    with tenant(app, farm.id, farm.owner):
        app.execute("SELECT farmops.give_feedback(%s, true)", [farm.run])
    for record_type in ("sale", "expense", "mortality"):  # the guarded types are drafts: confirm them
        with tenant(app, farm.id, farm.owner):
            app.execute(
                "SELECT farmops.confirm_draft(id) FROM farmops.assistant_drafts WHERE record_type = %s",
                [record_type],
            )


def leaks(app, admin, farm) -> list[str]:
    """Tables where a member of ``farm`` sees a row of another farm, or misses one of its own."""
    found = []
    for table in WRITE_TABLES:
        with tenant(app, farm.id, "vic"):
            seen = app.execute(f"SELECT farm_id, count(*) FROM farmops.{table} GROUP BY 1").fetchall()
        own = admin.execute(f"SELECT count(*) FROM farmops.{table} WHERE farm_id = %s", [farm.id]).fetchone()[
            0
        ]
        if own == 0 or seen != [(farm.id, own)]:
            found.append(table)
    return found


@pytest.fixture
def populated(app, admin):
    a = make_farm(app, admin, "Farm A", "alice")
    b = make_farm(app, admin, "Farm B", "bob")
    populate(app, admin, a)
    populate(app, admin, b)
    return a, b


def test_members_see_exactly_their_own_farms_rows_in_every_table(app, admin, populated):
    a, b = populated
    assert leaks(app, admin, a) == []
    assert leaks(app, admin, b) == []
    for table in WRITE_TABLES:  # and without a tenant context: nothing at all
        assert app.execute(f"SELECT count(*) FROM farmops.{table}").fetchone()[0] == 0, table


def test_the_isolation_check_fails_when_a_policy_is_missing(app, admin, populated):
    """Proof that the test above can fail: without RLS on one table, farm A sees farm B's drafts."""
    a, _ = populated
    admin.execute("ALTER TABLE farmops.assistant_drafts DISABLE ROW LEVEL SECURITY")
    assert leaks(app, admin, a) == ["assistant_drafts"]


@pytest.mark.parametrize(("past", "future"), [(-1, 1), (1, -1), (36501, 1), (1, 10**6)])
def test_registration_refuses_absurd_date_windows(owner, past, future):
    with raises_sqlstate("OF006"):
        owner.execute(
            "SELECT farmops.register_record_type(p_name => 'note', p_class => 'routine',"
            " p_description => 'd', p_target_schema => 'farmops', p_target_table => 'note_records',"
            " p_input_schema => input_schema, p_date_past_days => %s, p_date_future_days => %s)"
            " FROM farmops.record_types WHERE name = 'note'",
            [past, future],
        )
