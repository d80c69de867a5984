"""Smoke: the write path end to end as the application role: a funded run proposes a sale, the
owner confirms it, the record is stored."""

from psycopg.types.json import Jsonb
from support import row, tenant
from support.credits import add_member, grant, reserve, start


def test_smoke(app, admin, farm):
    add_member(app, farm, "bot", "agent")
    grant(app, farm, 1)
    run = reserve(app, farm, user="bot")["id"]
    start(app, farm, run, user="bot")
    with tenant(app, farm, "bot"):
        proposed = row(
            app,
            "propose_write",
            run_id=run,
            record_type="sale",
            payload=Jsonb({"item": "eggs", "quantity": 3, "amount_kobo": 450000}),
        )
    assert proposed["outcome"] == "drafted"
    with tenant(app, farm, "alice"):
        decided = row(app, "confirm_draft", draft_id=proposed["draft_id"])
    assert decided["status"] == "confirmed"
    assert admin.execute("SELECT count(*) FROM farmops.sale_records").fetchone()[0] == 1
