"""Money cost (issue 14 §3): prices beside the credit rates, unknown models fail closed, the dollar
cost of every run computed at settle, metered calls outside a run. As the application role."""

from __future__ import annotations

import datetime as dt

import pytest
from support import call, create_farm, raises_sqlstate, row, tenant
from support.credits import add_member, counts, grant, reserve, settle
from support.spend import NOVA, TITAN, clear_default_price, record_usage


def test_shipped_prices_have_a_source(app):
    rows = {
        r[0]: r[1:]
        for r in app.execute(
            "SELECT model, input_micro_usd_per_1k, output_micro_usd_per_1k, cache_read_micro_usd_per_1k,"
            " cache_write_micro_usd_per_1k, price_source FROM farmops.model_rates"
            " WHERE model IN (%s, %s, 'farmops-lexical-v1')",
            [NOVA, TITAN],
        ).fetchall()
    }
    assert rows[NOVA][:4] == (60, 240, 15, 60)
    assert rows[TITAN][:2] == (20, 0)
    assert rows["farmops-lexical-v1"][:2] == (0, 0)
    assert all("pricing" in r[4] or "offline" in r[4] for r in rows.values())


def test_unknown_model_fails_closed_without_a_default_price(app, owner, admin, farm):
    clear_default_price(owner)
    grant(app, farm, 100)
    before = counts(admin, farm)
    with raises_sqlstate("OF410"):
        reserve(app, farm, credits=5, model="no-such-model")
    assert counts(admin, farm) == before  # nothing written
    # The fused path too, and a shipped model still works.
    with raises_sqlstate("OF410"):
        row(
            app,
            "reserve_run",
            farm_id=farm,
            user_id="alice",
            feature="chat",
            model="no-such-model",
            credits=1,
        )
    assert reserve(app, farm, credits=5, model=NOVA)["status"] == "reserved"
    # A package owner's explicit default admits every model again.
    row(owner, "set_model_price", model="*", input_micro_usd_per_1k=1, output_micro_usd_per_1k=1)
    assert reserve(app, farm, credits=5, model="no-such-model")["status"] == "reserved"


def test_settle_computes_the_dollars_from_tokens(app, farm):
    grant(app, farm, 100)
    run = reserve(app, farm, credits=50, model=NOVA)
    done = settle(
        app,
        farm,
        run["id"],
        input_tokens=1000,
        output_tokens=500,
        cache_read_tokens=2000,
        cache_write_tokens=100,
    )
    # (1000*60 + 500*240 + 2000*15 + 100*60) / 1000 = 216 micro-USD; credits: cache tokens count as input.
    assert done["cost_micro_usd"] == 216
    assert done["credits_actual"] == 6  # ceil(3100 * 1/1000 + 500 * 4/1000)
    assert (done["cache_read_tokens"], done["cache_write_tokens"]) == (2000, 100)
    # The same settle again is a no-op; other cache counts are a conflict.
    assert (
        settle(
            app,
            farm,
            run["id"],
            input_tokens=1000,
            output_tokens=500,
            cache_read_tokens=2000,
            cache_write_tokens=100,
        )["cost_micro_usd"]
        == 216
    )
    with raises_sqlstate("OF104"):
        settle(app, farm, run["id"], input_tokens=1000, output_tokens=500, cache_read_tokens=1)


def test_cost_uses_the_price_in_force_at_reserve(app, owner, farm):
    grant(app, farm, 100)
    run = reserve(app, farm, credits=10, model="priced")
    row(
        owner,
        "set_model_price",
        model="priced",
        input_micro_usd_per_1k=1000000,
        output_micro_usd_per_1k=1000000,
    )
    # Reserved before "priced" had a price of its own: the default (1000 / 4000) applies.
    assert settle(app, farm, run["id"], input_tokens=1000, output_tokens=1000)["cost_micro_usd"] == 5000
    later = reserve(app, farm, credits=10, model="priced")
    assert settle(app, farm, later["id"], input_tokens=1000, output_tokens=0)["cost_micro_usd"] == 1000000


def test_without_tokens_the_cost_is_what_the_credits_can_buy(app, farm):
    grant(app, farm, 100)
    run = reserve(app, farm, credits=10)
    # Default price 1000 / 4000 micro-USD per 1k at 1 / 4 credits per 1k: 1000 micro-USD per credit.
    assert settle(app, farm, run["id"], credits_actual=3)["cost_micro_usd"] == 3000
    failed = reserve(app, farm, credits=10)
    assert settle(app, farm, failed["id"], status="failed")["cost_micro_usd"] == 0


def test_cost_for_tokens_and_bad_input(app):
    assert (
        row(
            app,
            "cost_for_tokens",
            model=NOVA,
            at=dt.datetime.now(dt.UTC),
            input_tokens=1000,
            output_tokens=1000,
        )["cost_for_tokens"]
        == 300
    )
    with raises_sqlstate("OF006"):
        call(app, "cost_for_tokens", model=NOVA, at=dt.datetime.now(dt.UTC), input_tokens=-1, output_tokens=0)
    with raises_sqlstate("OF006"):
        call(app, "cost_for_tokens", model=" ", at=dt.datetime.now(dt.UTC), input_tokens=1, output_tokens=0)
    with raises_sqlstate("OF006"):
        call(app, "cost_for_tokens", model=NOVA, at=None, input_tokens=1, output_tokens=0)


def test_the_app_cannot_set_prices(app, farm):
    for ctx in (None, (farm, "alice")):
        with raises_sqlstate("42501"):
            if ctx:
                with tenant(app, *ctx):
                    call(
                        app, "set_model_price", model="m", input_micro_usd_per_1k=0, output_micro_usd_per_1k=0
                    )
            else:
                call(app, "set_model_price", model="m", input_micro_usd_per_1k=0, output_micro_usd_per_1k=0)


@pytest.mark.parametrize(
    "kw",
    [
        {"model": None, "input_micro_usd_per_1k": 1, "output_micro_usd_per_1k": 1},
        {"model": "bad\nname", "input_micro_usd_per_1k": 1, "output_micro_usd_per_1k": 1},
        {"model": "m" * 100_000, "input_micro_usd_per_1k": 1, "output_micro_usd_per_1k": 1},
        {"model": "m", "input_micro_usd_per_1k": -1, "output_micro_usd_per_1k": 1},
        {"model": "m", "input_micro_usd_per_1k": 1, "output_micro_usd_per_1k": None},
        {
            "model": "m",
            "input_micro_usd_per_1k": None,
            "output_micro_usd_per_1k": None,
            "cache_read_micro_usd_per_1k": 1,
        },
        {"model": "m", "input_micro_usd_per_1k": 1, "output_micro_usd_per_1k": 10**12},
        {
            "model": "m",
            "input_micro_usd_per_1k": 1,
            "output_micro_usd_per_1k": 1,
            "effective_from": dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
        },
        {"model": "m", "input_micro_usd_per_1k": 1, "output_micro_usd_per_1k": 1, "source": "x\x01"},
    ],
)
def test_set_price_bad_input_is_of006(owner, admin, kw):
    before = admin.execute("SELECT count(*) FROM farmops.model_rates").fetchone()
    with raises_sqlstate("OF006"):
        call(owner, "set_model_price", **kw)
    assert admin.execute("SELECT count(*) FROM farmops.model_rates").fetchone() == before


def test_a_new_credit_rate_keeps_the_models_price(owner, app):
    row(owner, "set_model_price", model="keep", input_micro_usd_per_1k=7, output_micro_usd_per_1k=9)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    row(
        owner,
        "set_model_rate",
        model="keep",
        input_credits_per_1k=2,
        output_credits_per_1k=3,
        effective_from=later,
    )
    price = row(app, "model_price_at", model="keep", at=later)
    assert (
        price["input_micro_usd_per_1k"],
        price["output_micro_usd_per_1k"],
        price["input_credits_per_1k"],
    ) == (7, 9, 2)


def test_record_usage_meters_calls_outside_a_run(app, admin, two_farms):
    a, b = two_farms
    grant(app, a, 100)
    used = record_usage(app, a, feature="ingest", model=TITAN, input_tokens=12_345)
    assert used["cost_micro_usd"] == 247  # ceil(12345 * 20 / 1000)
    run = reserve(app, a, credits=5)
    leg = record_usage(app, a, feature="search", model=TITAN, input_tokens=10, run_id=run["id"])
    assert (leg["ai_run_id"], leg["feature"]) == (run["id"], "chat")  # a leg counts under its run's feature
    with raises_sqlstate("OF006"):
        record_usage(app, a, model=TITAN, input_tokens=1)  # no run: a feature is required
    # A viewer's search embeds its query: any member is metered.
    add_member(app, a, "vic", "viewer")
    assert record_usage(app, a, "vic", feature="search", model=TITAN, input_tokens=1)["cost_micro_usd"] == 1
    # Another farm's run is not found; unpriced models, bad counts and no tenant are refused.
    with raises_sqlstate("OF102"):
        record_usage(app, b, "bob", feature="chat", model=TITAN, input_tokens=1, run_id=run["id"])
    with raises_sqlstate("OF006"):
        record_usage(app, a, feature="ingest", model=TITAN, input_tokens=-1)
    with raises_sqlstate("OF006"):
        record_usage(app, a, feature="ingest", model=TITAN, input_tokens=None)
    with raises_sqlstate("OF006"):
        record_usage(app, a, feature="x" * 101, model=TITAN, input_tokens=1)
    with raises_sqlstate("OF001"):
        call(app, "record_usage", feature="ingest", model=TITAN, input_tokens=1)
    assert admin.execute("SELECT count(*) FROM farmops.model_usage").fetchone() == (3,)
    # Append-only.
    with raises_sqlstate("42501"):
        app.execute("DELETE FROM farmops.model_usage")
    with raises_sqlstate("OF107"):
        admin.execute("UPDATE farmops.model_usage SET cost_micro_usd = 0")


def test_record_usage_of_an_unpriced_model_fails_closed(app, owner, farm):
    clear_default_price(owner)
    with raises_sqlstate("OF410"):
        record_usage(app, farm, feature="ingest", model="mystery-embedder", input_tokens=1)


def test_read_models_per_day_feature_model_member(app, farm):
    other = create_farm(app, "Other", "bob")
    grant(app, farm, 1000)
    grant(app, other, 1000, user="bob")
    add_member(app, farm, "wes", "worker")
    for user, feature in (("alice", "chat"), ("alice", "chat"), ("wes", "report")):
        run = reserve(app, farm, user, credits=20, feature=feature, model=NOVA)
        settle(app, farm, run["id"], user=user, input_tokens=1000, output_tokens=1000)
    record_usage(app, farm, feature="ingest", model=TITAN, input_tokens=1000)
    run = reserve(app, other, "bob", credits=20, model=NOVA)
    settle(app, other, run["id"], user="bob", input_tokens=1000, output_tokens=1000)
    with tenant(app, farm, "alice"):
        daily = app.execute(
            "SELECT feature, model, user_id, calls, cost_micro_usd FROM farmops.spend_daily ORDER BY 1"
        ).fetchall()
        mtd = app.execute("SELECT * FROM farmops.spend_month_to_date").fetchall()
    assert daily == [
        ("chat", NOVA, "alice", 2, 600),
        ("ingest", TITAN, "alice", 1, 20),
        ("report", NOVA, "wes", 1, 300),
    ]
    assert len(mtd) == 1 and mtd[0][3] == 920  # spent this month: this farm only
    assert mtd[0][5] >= 920  # the linear projection is never below what is spent
    # No tenant context: no rows.
    assert app.execute("SELECT count(*) FROM farmops.spend_daily").fetchone() == (0,)
    assert app.execute("SELECT count(*) FROM farmops.spend_month_to_date").fetchone() == (0,)


def test_views_are_security_invoker(admin):
    names = admin.execute(
        "SELECT c.relname FROM pg_class AS c"
        " WHERE c.relnamespace = 'farmops'::regnamespace AND c.relkind = 'v'"
        " AND NOT coalesce('security_invoker=true' = ANY (c.reloptions), false)"
    ).fetchall()
    assert names == []
