"""A small fuzzer over the catalog: every function the application role may execute, each argument
in turn given odd values (NULL, blank, padded, control characters, 100k characters, integer
extremes, negative numbers, garbage uuids, wrong-dimension and zero vectors, empty and 2-d
arrays, infinities), the others sensible, as the application role inside a tenant context.

Every call must succeed or raise a documented OF code. A raw SQLSTATE is a bug, except what the
client's own SQL raises before any farmops function runs (42501 no privilege, 42883 no such
function, 22P02 the client's cast of a garbage literal): those carry no function in their context.
The list of functions comes from pg_proc, so a new public function is fuzzed without a change here.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest
from support import tenant

MODEL = "amazon.titan-embed-text-v2:0"
DIM = 1024
CLIENT_SIDE = {"42501", "42883", "22P02"}
LONG = "x" * 100_000


def vec(*components: float, dim: int = DIM) -> str:
    return "[" + ",".join(repr(float(x)) for x in [*components, *[0.0] * (dim - len(components))]) + "]"


#: Odd values per argument type (given as the client would send them, cast to the type).
ODD = {
    "text": [None, "  x  ", "", " ", "\x01", "x\x7f", "\t\n", LONG],
    "integer": [None, 2147483647, -2147483648, -1, 0],
    "bigint": [None, 9223372036854775807, -1, 0],
    "uuid": [None, "not-a-uuid", str(uuid.uuid4())],
    "boolean": [None],
    "jsonb": [None, "null", "[]", '"x"', "1e400", '{"a": null}', "[" * 2000 + "]" * 2000],
    "vector": [None, "[1,2,3]", vec(0), vec(1, dim=DIM + 1)],
    "vector[]": [None, "{}", '{"[1,2,3]"}', "{NULL}", f'{{"{vec(0)}"}}'],
    "text[]": [None, [], [None], [" "], [LONG], [["a"], ["b"]], ["\x01"]],
    "integer[]": [None, [], [None], [0], [2147483647], [[1], [2]], list(range(100))],
    "timestamp with time zone": [None, "infinity", "-infinity"],
    "interval": [None, "-1 day", "0", "100000 years"],
    "numeric": [None, "NaN", "-1", "1e100"],
}


@pytest.fixture
def world(app, owner, farm):
    """Sensible values for every argument name the API uses."""
    with tenant(app, farm, "alice"):
        app.execute("SELECT farmops.grant_credits(%s, 1000, 'fuzz')", [farm])
    with tenant(app, farm, "alice"):
        run = app.execute("SELECT id FROM farmops.reserve_credits('chat', 'test-model', 1)").fetchone()[0]
    with tenant(app, farm, "alice"):
        app.execute("SELECT farmops.start_run(%s)", [run])
        doc = app.execute(
            "SELECT farmops.ingest_document('doc', 'content', ARRAY['chunk'], ARRAY[%s::vector], %s)",
            [vec(1), MODEL],
        ).fetchone()[0]
        memory = app.execute("SELECT farmops.remember('a fact')").fetchone()[0]
        recommendation = app.execute("SELECT farmops.recommend(%s, 'title', 'body')", [run]).fetchone()[0]
        app.execute("SELECT farmops.add_member(%s, 'bob', 'manager')", [farm])
        app.execute("SELECT farmops.set_autonomy(p_tier => 'draft')")
        draft = app.execute(
            "SELECT draft_id FROM farmops.propose_write(%s, 'note', '{\"body\": \"b\"}')", [run]
        )
        draft = draft.fetchone()[0]
    owner.execute(
        "SELECT farmops.ingest_global_document('g', 'global', ARRAY['g'], ARRAY[%s::vector], %s)",
        [vec(0, 1), MODEL],
    )
    return {
        "p_farm_id": farm,
        "p_run_id": run,
        "p_document_id": doc,
        "p_memory_id": memory,
        "p_recommendation_id": recommendation,
        "p_user_id": "alice",
        "p_owner_user_id": "alice",
        "p_role": "worker",
        "p_model": MODEL,
        "p_source_type": "convo_summary",
        "p_record_type": "note",
        "p_draft_id": draft,
        "p_capability": "read",
        "p_status": "succeeded",
        "p_stage": "input",
        "p_tier": "draft",
        "p_feature": "chat",
        "p_period": "month",
        "p_credits": 1,
        "p_k": 4,
        "p_query": vec(1),
        "p_embedding": vec(1),
        "p_embeddings": f'{{"{vec(1)}"}}',
        "p_chunks": ["chunk"],
        "p_payload": '{"body": "b"}',
        "p_edits": '{"body": "c"}',
        "p_auto_categories": '["note"]',
        "p_record_autonomy": '{"note": "draft"}',
        "p_source_types": ["document", "memory", "convo_summary"],
    }


#: Where one function needs another sensible value than the rest.
OVERRIDES = {
    "farmops.add_member": {"p_user_id": "carol"},
    "farmops.remove_member": {"p_user_id": "bob"},
}

DEFAULT_BY_TYPE = {
    "text": "x",
    "integer": 1,
    "bigint": 1,
    "uuid": str(uuid.UUID(int=1)),
    "boolean": True,
    "jsonb": "{}",
    "vector": vec(1),
    "vector[]": f'{{"{vec(1)}"}}',
    "text[]": ["x"],
    "integer[]": [80],
    "timestamp with time zone": "now",
    "interval": "1 minute",
    "numeric": 1,
}


def public_functions(admin) -> list[tuple[str, list[tuple[str, str]]]]:
    """(qualified name, [(argument name, type)]) of every function the application may execute."""
    rows = admin.execute(
        """SELECT p.proname, coalesce(p.proargnames, '{}'), coalesce(p.proargmodes::text[], '{}'),
                  ARRAY(SELECT format_type(t, NULL) FROM unnest(p.proargtypes) AS t)
           FROM pg_proc AS p
           WHERE p.pronamespace = 'farmops'::regnamespace AND p.prokind = 'f'
               AND has_function_privilege('farmops_app', p.oid, 'EXECUTE')
           ORDER BY 1, 4""",
    ).fetchall()
    functions = []
    for name, names, modes, types in rows:
        # proargnames also lists OUT arguments; proargtypes only the input ones.
        inputs = [n for i, n in enumerate(names) if not modes or modes[i] in ("i", "b")]
        functions.append((f"farmops.{name}", list(zip(inputs, types, strict=True))))
    return functions


def call(conn, farm, function: str, args: dict[str, tuple[str, object]]) -> str:
    """Call in a rolled-back transaction (in farm's tenant context unless farm is None): a finding,
    or the documented code raised ('' if none)."""
    named = ", ".join(f"{n} => %({n})s::{t}" for n, (t, _) in args.items())
    try:
        if farm is not None:
            conn.execute("SELECT farmops.begin_tenant(%s, 'alice')", [farm])
        conn.execute(f"SELECT * FROM {function}({named})", {n: v for n, (_, v) in args.items()}).fetchall()
    except psycopg.Error as exc:
        state = exc.sqlstate or ""
        # A client's parameter that does not cast fails "in" the portal, not in a function.
        inside = "function" in (exc.diag.context or "")
        if state.startswith("OF") or (state in CLIENT_SIDE and not inside):
            return state
        shown = {
            n: (v if not isinstance(v, str) or len(v) < 40 else v[:20] + f"...({len(v)})")
            for n, (_, v) in args.items()
        }
        return f"{function}({shown}) -> {state} {str(exc).splitlines()[0][:160]}"
    finally:
        conn.rollback()
    return ""


@pytest.mark.parametrize("in_context", [True, False], ids=["tenant-context", "no-context"])
def test_no_public_function_raises_a_raw_sqlstate(connect, admin, world, in_context):
    conn = connect("app", autocommit=False)
    conn.execute("SET statement_timeout = '20s'")  # a hang is a finding (57014), not a stuck suite
    conn.commit()
    farm = world["p_farm_id"] if in_context else None
    functions = public_functions(admin)
    assert len(functions) > 40
    findings, calls, refused_base = [], 0, []
    for function, arguments in functions:
        unknown = {t for _, t in arguments} - DEFAULT_BY_TYPE.keys()
        assert not unknown, f"teach the fuzzer the type(s) {unknown} of {function}"
        sensible = {**world, **OVERRIDES.get(function, {})}
        base = {n: (t, sensible.get(n, DEFAULT_BY_TYPE[t])) for n, t in arguments}
        cases = [base] + [{**base, n: (t, odd)} for n, t in arguments for odd in ODD[t]]
        for i, args in enumerate(cases):
            calls += 1
            outcome = call(conn, farm, function, args)
            if len(outcome) > 5:
                findings.append(outcome)
            elif i == 0 and outcome:
                refused_base.append(f"{function}: {outcome}")
    # The sensible call of these was refused, so their later arguments were fuzzed less deeply.
    print(
        f"{len(functions)} functions, {calls} calls, {len(findings)} findings; base refused: {refused_base}"
    )
    assert findings == [], "\n".join(findings)
