"""What a session (or a setting) can do to the rules: WITH HOLD cursors, row_security, search
settings, the price list's edges. All as the application role."""

from __future__ import annotations

import datetime

import psycopg
import pytest
from support import APP_LOGIN, create_farm, sqlstate_of, tenant

import farmops_client

DIM = 1024


def vec(*components: float) -> str:
    return "[" + ",".join(repr(float(x)) for x in [*components, *[0.0] * (DIM - len(components))]) + "]"


def test_a_with_hold_cursor_of_a_tenant_transaction_does_not_reach_the_next_borrower(db, app):
    farm = create_farm(app, "Secret farm", "alice")
    with farmops_client.connect(db.dsn(APP_LOGIN), min_size=1, max_size=1) as client:
        with client.connection() as conn:
            pid = conn.info.backend_pid
            with conn.transaction():
                conn.execute("SELECT farmops.begin_tenant(%s, 'alice')", [farm])
                conn.execute("DECLARE held CURSOR WITH HOLD FOR SELECT name FROM farmops.farms")
            # Committed: the cursor and its materialised rows outlive the tenant transaction.
            assert conn.execute("FETCH 1 FROM held").fetchone() == ("Secret farm",)
        with client.connection() as conn:
            assert conn.info.backend_pid == pid  # the same server connection, reset by the pool
            assert conn.execute("SELECT count(*) FROM pg_cursors").fetchone() == (0,)


def test_begin_tenant_refuses_a_session_holding_a_with_hold_cursor(app, two_farms):
    a, b = two_farms
    with tenant(app, a, "alice"):
        app.execute("DECLARE held CURSOR WITH HOLD FOR SELECT name FROM farmops.farms")
    # An application reusing its own connection without a reset: the next tenant is refused...
    for farm, user in ((b, "bob"), (a, "alice")):
        with pytest.raises(psycopg.Error) as excinfo, tenant(app, farm, user):
            pass
        assert sqlstate_of(excinfo) == "OF007"
        assert "held" in str(excinfo.value)
    with pytest.raises(farmops_client.errors.HoldableCursorOpen):
        raise farmops_client.errors.translate(excinfo.value)
    # ...until the cursor is closed (a plain cursor of the transaction is no matter).
    app.execute("CLOSE held")
    with tenant(app, b, "bob"):
        app.execute("DECLARE plain CURSOR FOR SELECT 1")
        assert app.execute("SELECT name FROM farmops.farms").fetchall() == [("Farm B",)]


def test_row_security_off_is_refused_with_42501_even_inside_functions(app, farm):
    """Documented answer (README, Errors): a session that turns row_security off gets 42501."""
    app.execute("SET row_security = off")
    for statement in (
        "SELECT count(*) FROM farmops.farms",
        "SELECT * FROM farmops.search(%s::vector)",
        "SELECT farmops.reserve_credits('chat', 'test-model', 1)",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as excinfo, tenant(app, farm, "alice"):
            app.execute(statement, [vec(1)] if "%s" in statement else None)
        assert "row-level security" in str(excinfo.value)
    app.execute("RESET row_security")
    with tenant(app, farm, "alice"):
        assert app.execute("SELECT count(*) FROM farmops.farms").fetchone() == (1,)


@pytest.mark.parametrize("value", ["abc", "", "-1", "1e9", "99999999999", "10.5", "2000000"])
def test_an_unusable_exact_search_max_rows_means_the_default(app, farm, value):
    with tenant(app, farm, "alice"):
        app.execute(
            "SELECT farmops.ingest_document('t', 'c', ARRAY['x'], ARRAY[%s::vector], %s)",
            [vec(1), "amazon.titan-embed-text-v2:0"],
        )
        app.execute("SELECT set_config('farmops.exact_search_max_rows', %s, true)", [value])
        assert app.execute("SELECT farmops.exact_search_max_rows()").fetchone() == (10000,)
        assert app.execute("SELECT content FROM farmops.search(%s::vector)", [vec(1)]).fetchall() == [("x",)]


@pytest.mark.parametrize(("value", "expected"), [("0", 0), (" 5 ", 5), ("1000000", 1000000)])
def test_a_valid_exact_search_max_rows_is_used(app, value, expected):
    app.execute("SELECT set_config('farmops.exact_search_max_rows', %s, false)", [value])
    assert app.execute("SELECT farmops.exact_search_max_rows()").fetchone() == (expected,)


def test_the_default_rate_loads_in_the_client(app):
    # (The test template's default price is a later '*' row: ask before it.)
    rate = app.execute("SELECT (farmops.model_rate_at('any-model', '2000-01-01')).effective_from")
    rate = rate.fetchone()[0]
    assert rate == datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    assert app.execute("SELECT min(effective_from) FROM farmops.model_rates").fetchone()[0] == rate


@pytest.mark.parametrize("at", ["infinity", "-infinity"])
def test_set_model_rate_refuses_infinities(owner, at):
    with pytest.raises(psycopg.Error) as excinfo:
        owner.execute("SELECT farmops.set_model_rate('m', 1, 1, %s::timestamptz)", [at])
    assert sqlstate_of(excinfo) == "OF006"


@pytest.mark.parametrize(("tokens_in", "tokens_out"), [(-1, 0), (0, -1), (-2147483648, 5)])
def test_credits_for_negative_tokens_is_refused(app, tokens_in, tokens_out):
    with pytest.raises(psycopg.Error) as excinfo:
        app.execute("SELECT farmops.credits_for_tokens('m', now(), %s, %s)", [tokens_in, tokens_out])
    assert sqlstate_of(excinfo) == "OF006"
    assert app.execute("SELECT farmops.credits_for_tokens('m', now(), 1000, NULL)").fetchone() == (1,)
