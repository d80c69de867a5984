"""`farmops demo` end to end on the test database (FakeBedrock at the wire, app login role)."""

from __future__ import annotations

import io
import re

from rich.console import Console

from farmops_client.demo import DEMO_ROLE, run_demo
from farmops_client.testing import FakeBedrock


def test_demo_runs_the_whole_loop(db, admin):
    buffer = io.StringIO()
    ids = run_demo(db.dsn(), console=Console(file=buffer, width=200, highlight=False))
    text = buffer.getvalue()
    assert FakeBedrock.LABEL in text
    assert "drafted for confirmation" in text and "written (record" in text
    assert "not allowed: suggest only" in text
    assert "refused, NotAMember [OF002]" in text
    assert "invariants: hold" in text
    assert "audit chain of farm A: " in text and "verify_audit: intact" in text
    assert "card [PAYMENT_CARD]; call him on [PHONE] or [EMAIL]" in text
    assert "check_text(input): block (instruction_override" in text
    assert "check_text(input): allow (-)  Ignore the weak birds" in text
    assert "check_text(retrieved): block (data_exfiltration)  Feed note. ![status]" in text
    assert "musa may ask once a minute: answered; RateLimited (retry after" in text
    streamed = re.search(r"ask_stream: (\d+) screened pieces: (.*)", text)
    assert streamed and int(streamed.group(1)) >= 2
    assert "calls on [PHONE] before nine" in streamed.group(2) and "0803" not in text
    runs = dict(
        admin.execute("SELECT id, status FROM farmops.ai_runs WHERE user_id !~ '^erased:'").fetchall()
    )
    assert runs == {ids["run_a"]: "succeeded", ids["run_b"]: "succeeded", ids["run_streamed"]: "succeeded"}
    musa = admin.execute("SELECT status FROM farmops.ai_runs WHERE user_id ~ '^erased:'").fetchall()
    assert musa == [("succeeded",)]  # the refused ask left no run (and musa was erased since)
    erasure = re.search(
        r"alice erases musa: (\d+) rows now say erased:[0-9a-f]{8}\.\.; verify_audit: intact", text
    )
    assert erasure and int(erasure.group(1)) >= 3
    assert admin.execute("SELECT count(*) FROM farmops.ai_runs WHERE user_id = 'musa'").fetchone() == (0,)
    assert "farmops_rate_limit_refusals_total{limit=member} 1" in text
    sales = admin.execute("SELECT count(*) FROM farmops.sale_records WHERE farm_id = %s", [ids["farm_a"]])
    assert sales.fetchone()[0] == 1
    users = {r[0] for r in admin.execute("SELECT DISTINCT actor FROM farmops.credit_ledger")}
    assert {u for u in users if not u.startswith("erased:")} == {"alice", "bob"} and len(users) == 3
    role = admin.execute(
        "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s", [DEMO_ROLE]
    ).fetchone()
    assert role == (False, False)
