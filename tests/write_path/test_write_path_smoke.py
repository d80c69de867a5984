"""Smoke: the write path migrates and a draft can be proposed and confirmed."""

from support import tenant


def test_smoke(app, admin, farm):
    admin.execute("INSERT INTO farmops.farm_members VALUES (%s, 'bot', 'agent')", [farm])
    run = admin.execute(
        "INSERT INTO farmops.ai_runs (farm_id, user_id, feature, model, status, credits_reserved, expires_at)"
        " VALUES (%s, 'bot', 'chat', 'm', 'running', 1, now() + interval '1 hour') RETURNING id",
        [farm],
    ).fetchone()[0]
    with tenant(app, farm, "bot"):
        row = app.execute(
            "SELECT * FROM farmops.propose_write(p_run_id => %s, p_record_type => 'sale',"
            ' p_payload => \'{"item": "eggs", "quantity": 3, "amount_kobo": 450000}\')',
            [run],
        ).fetchone()
    assert row[1] == "drafted"
    with tenant(app, farm, "alice"):
        d = app.execute("SELECT status, record_id FROM farmops.confirm_draft(%s)", [row[0]]).fetchone()
    assert d[0] == "confirmed"
    assert admin.execute("SELECT count(*) FROM farmops.sale_records").fetchone()[0] == 1
