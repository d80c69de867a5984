"""model_rates, estimate_credits and set_model_rate: the price of a run is a database rule."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import call, raises_sqlstate, tenant, value
from support.credits import grant, invariants, reserve, settle

INT_MAX = 2**31 - 1


def _estimate(conn, model, max_in, max_out):
    return value(conn, "estimate_credits", model=model, max_input_tokens=max_in, max_output_tokens=max_out)


def _set_rate(conn, model, rate_in, rate_out, effective_from=None):
    """set_model_rate; effective_from keeps its default unless given."""
    when = {} if effective_from is None else {"effective_from": effective_from}
    call(
        conn,
        "set_model_rate",
        model=model,
        input_credits_per_1k=rate_in,
        output_credits_per_1k=rate_out,
        **when,
    )


def test_default_rate_estimates_without_tenant(app):
    # '*': 1 credit / 1k input, 4 / 1k output, rounded up, at least 1
    assert _estimate(app, "any-model", 1000, 1000) == 5
    assert _estimate(app, "any-model", 1001, 0) == 2
    assert _estimate(app, "any-model", 0, 0) == 1
    assert _estimate(app, "any-model", INT_MAX, INT_MAX) == -(-INT_MAX * 5 // 1000)


@pytest.mark.parametrize(
    ("model", "max_in", "max_out"),
    [(None, 1, 1), ("", 1, 1), ("m" * 201, 1, 1), ("m" * 1_000_000, 1, 1), ("m", None, 1), ("m", 1, None),
     ("m", -1, 0), ("m", 0, -(2**31))],
)  # fmt: skip
def test_estimate_bad_input(app, model, max_in, max_out):
    with raises_sqlstate("OF006"):
        _estimate(app, model, max_in, max_out)


def test_owner_sets_a_model_rate(owner, app):
    _set_rate(owner, "claude", 3, 15)
    assert _estimate(app, "claude", 2000, 1000) == 21
    assert _estimate(app, "other", 2000, 1000) == 6  # still the default


def test_future_rate_and_rate_in_force_at_reservation(owner, app, admin, farm):
    grant(app, farm, 100)
    _set_rate(owner, "m", 10, 10)
    run = reserve(app, farm, model="m", credits=50)
    # a price change after the reservation does not reprice the run
    _set_rate(owner, "m", 1000, 1000)
    done = settle(app, farm, run["id"], input_tokens=1000, output_tokens=1000)
    assert done["credits_actual"] == 20
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    _set_rate(owner, "m", 1, 1, later)
    assert _estimate(app, "m", 1000, 1000) == 2000  # tomorrow's rate is not in force yet
    assert invariants(owner, farm) == []


def test_the_app_cannot_set_rates_or_write_them(app, admin, farm):
    before = admin.execute("SELECT count(*) FROM farmops.model_rates").fetchone()
    for conn_ctx in (None, (farm, "alice")):
        with raises_sqlstate("42501"):
            if conn_ctx:
                with tenant(app, *conn_ctx):
                    _set_rate(app, "m", 0, 0)
            else:
                _set_rate(app, "m", 0, 0)
    assert admin.execute("SELECT count(*) FROM farmops.model_rates").fetchone() == before


@pytest.mark.parametrize(
    ("args", "sqlstate"),
    [
        ((None, 1, 1), "OF006"),
        (("", 1, 1), "OF006"),
        (("bad\nname", 1, 1), "OF006"),
        (("m" * 1_000_000, 1, 1), "OF006"),
        (("m", -1, 1), "OF006"),
        (("m", 1, None), "OF006"),
        (("m", 1, 1, dt.datetime(2000, 1, 1, tzinfo=dt.UTC)), "OF006"),
        (("m", 2**31, 1), "42883"),
    ],
)
def test_set_rate_bad_input(owner, admin, args, sqlstate):
    before = admin.execute("SELECT count(*) FROM farmops.model_rates").fetchone()
    with raises_sqlstate(sqlstate):
        _set_rate(owner, *args)
    assert admin.execute("SELECT count(*) FROM farmops.model_rates").fetchone() == before


def test_no_default_rate_is_of108(admin, app, farm):
    grant(app, farm, 10)
    run = reserve(app, farm, credits=5)  # reserving needs a price (OF410), which the test default gives
    admin.execute("DELETE FROM farmops.model_rates")
    with raises_sqlstate("OF108"):
        _estimate(app, "m", 1, 1)
    with raises_sqlstate("OF108"):
        settle(app, farm, run["id"], input_tokens=10)
    assert settle(app, farm, run["id"], credits_actual=1)["credits_actual"] == 1


def test_estimate_overflow_is_of006(owner, app):
    _set_rate(owner, "pricey", INT_MAX, INT_MAX)
    with raises_sqlstate("OF006"):
        _estimate(app, "pricey", INT_MAX, INT_MAX)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rate_in=st.integers(0, 10_000),
    rate_out=st.integers(0, 10_000),
    tokens_in=st.integers(0, 2_000_000),
    tokens_out=st.integers(0, 2_000_000),
)
def test_estimate_matches_the_formula(owner, app, rate_in, rate_out, tokens_in, tokens_out):
    with owner.transaction(force_rollback=True):
        _set_rate(owner, "h", rate_in, rate_out)
        got = _estimate(owner, "h", tokens_in, tokens_out)
    expected = max(1, -(-(tokens_in * rate_in + tokens_out * rate_out) // 1000))
    assert got == expected
