"""What docs/scale-out.md says a read replica may serve, proven in a READ ONLY transaction (what a hot
standby allows): the tenant context, search, listings and the checks write nothing; reserving does."""

from __future__ import annotations

import psycopg
import pytest
from support import tenant
from support.knowledge import ingest, search, unit2


def test_the_tenant_context_search_and_listings_run_read_only(app, farm):
    with tenant(app, farm, "alice"):
        app.execute("SELECT farmops.grant_credits(%s, 100, 'test')", [farm])
        ingest(app, "Vaccines", "Gumboro on day 14.", ["Gumboro on day 14."], [unit2(0)])
    with app.transaction():
        app.execute("SET TRANSACTION READ ONLY")
        assert app.execute("SELECT farmops.begin_tenant(%s, 'alice')", [farm]).fetchone() == ("owner",)
        assert [hit["content"] for hit in search(app, unit2(5), k=1)] == ["Gumboro on day 14."]
        assert app.execute("SELECT count(*) FROM farmops.credit_ledger").fetchone() == (1,)
        assert app.execute("SELECT count(*) FROM farmops.ai_runs").fetchone() == (0,)
        assert app.execute("SELECT * FROM farmops.check_invariants()").fetchall() == []
        app.execute("SELECT * FROM farmops.check_tenancy()").fetchall()


def test_reserving_credits_needs_the_primary(app, farm):
    with tenant(app, farm, "alice"):
        app.execute("SELECT farmops.grant_credits(%s, 100, 'test')", [farm])
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction), app.transaction():
        app.execute("SET TRANSACTION READ ONLY")
        app.execute("SELECT farmops.begin_tenant(%s, 'alice')", [farm])
        app.execute("SELECT farmops.reserve_credits(p_feature => 'chat', p_model => 'm', p_credits => 1)")
