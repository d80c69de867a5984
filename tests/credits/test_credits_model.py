"""Property tests: any sequence of credit operations keeps the books balanced; every RAISE is documented."""

from __future__ import annotations

import re

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import REPO, create_farm
from support.credits import balance, expire, grant, invariants, reserve, settle, start

from farmops_client.errors import BY_SQLSTATE, FarmopsError

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("grant"), st.integers(1, 50)),
        st.tuples(st.just("reserve"), st.integers(1, 30), st.sampled_from([None, "k1", "k2"])),
        st.tuples(st.just("start"), st.integers(0, 9)),
        st.tuples(
            st.just("settle"),
            st.integers(0, 9),
            st.sampled_from(["succeeded", "failed"]),
            st.one_of(st.none(), st.integers(0, 60)),
            st.one_of(st.none(), st.integers(0, 20_000)),
        ),
        st.tuples(st.just("expire"), st.integers(0, 9)),
    ),
    max_size=25,
)
EXPECTED = {"OF101", "OF103", "OF104", "OF105", "OF106", "OF006"}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_any_sequence_keeps_the_books(app, admin, owner, ops):
    farm = create_farm(app, "Model farm", "alice")
    grant(app, farm, 100)
    runs: list[dict] = []
    for op in ops:
        try:
            if op[0] == "grant":
                grant(app, farm, op[1])
            elif op[0] == "reserve":
                runs.append(reserve(app, farm, credits=op[1], request_id=op[2]))
            elif op[0] == "start" and runs:
                start(app, farm, runs[op[1] % len(runs)]["id"])
            elif op[0] == "settle" and runs:
                _, i, status, actual, tokens = op
                settle(app, farm, runs[i % len(runs)]["id"], status=status, credits_actual=actual,
                       output_tokens=tokens)  # fmt: skip
            elif op[0] == "expire" and runs:
                run = runs[op[1] % len(runs)]
                admin.execute(  # make this one run due, then let the job find it
                    "ALTER TABLE farmops.ai_runs DISABLE TRIGGER ai_runs_move_forward_only;"
                    "UPDATE farmops.ai_runs SET reserved_at = reserved_at - interval '1 day',"
                    f" expires_at = expires_at - interval '1 day' WHERE id = '{run['id']}'"
                    " AND status IN ('reserved', 'running');"
                    "ALTER TABLE farmops.ai_runs ENABLE ALWAYS TRIGGER ai_runs_move_forward_only"
                )
                expire(app)
        except (psycopg.Error, FarmopsError) as exc:
            assert exc.sqlstate in EXPECTED, exc
        assert balance(admin, farm) >= 0
        assert invariants(owner, farm) == []


def test_every_raise_uses_a_documented_code(app):
    documented = {row[0] for row in app.execute("SELECT sqlstate FROM farmops.error_codes()")}
    assert documented == set(BY_SQLSTATE)
    used = set()
    for path in (REPO / "sql").rglob("*.sql"):
        if path.name == "install.sql":
            continue
        used |= set(re.findall(r"ERRCODE\s*=\s*'([0-9A-Z]{5})'", path.read_text(encoding="utf-8")))
    assert used
    # PostgreSQL's own "retry the transaction" code is the honest one for a lost race that a
    # retry resolves (drivers and poolers already retry on it); every other code must be ours.
    standard_retryable = {"40001"}
    assert used <= documented | standard_retryable, used - documented
