"""The client's shape: one-way layers, real signatures, one home for exceptions, an explicit embedder."""

from __future__ import annotations

import ast
import graphlib
import importlib
import inspect
import uuid
from pathlib import Path

import psycopg
import pytest
from support import APP_LOGIN, race

import farmops_client
from farmops_client.client import TenantSession
from farmops_client.embeddings import LEXICAL_MODEL, LexicalEmbedder, embedder_named
from farmops_client.errors import FarmopsError, NotConfigured
from farmops_client.tenancy import create_app_login
from farmops_client.testing import FakeBedrock, fake_bedrock_client

PACKAGE = Path(farmops_client.__file__).resolve().parent

#: Each module's layer: a module may import only modules of LOWER layers (the assistant's parts
#: may also import each other, without a cycle). A new module needs a line here.
LAYERS = {
    "farmops_client.errors": 0,
    "farmops_client.paths": 0,
    "farmops_client.aws": 0,
    "farmops_client.tracing": 0,
    "farmops_client.embeddings": 1,
    "farmops_client.db": 1,
    "farmops_client.arguments": 1,
    "farmops_client.testing": 2,
    "farmops_client.embedded": 2,
    "farmops_client.migrate": 2,
    "farmops_client.session": 2,
    "farmops_client.tenancy": 3,
    "farmops_client.credits": 3,
    "farmops_client.control": 3,
    "farmops_client.write_path": 3,
    "farmops_client.knowledge": 3,
    "farmops_client.maintenance": 3,
    "farmops_client.trust": 3,
    "farmops_client.audit": 3,
    "farmops_client.observability": 3,
    "farmops_client.spend": 3,
    "farmops_client.assistant": 4,
    "farmops_client.assistant.sizing": 4,
    "farmops_client.assistant.tools": 4,
    "farmops_client.assistant.guarding": 4,
    "farmops_client.assistant.core": 4,
    "farmops_client.assistant.steps": 4,
    "farmops_client.assistant.streaming": 4,
    "farmops_client.assistant.options": 4,
    "farmops_client.assistant.run": 4,
    "farmops_client.client": 5,
    "farmops_client.aio": 6,  # the asyncio twin of client (its pool reset)
    "farmops_client.demo": 6,
    "farmops_client.cli.base": 7,
    "farmops_client.cli.*": 8,  # every command group: each imports base (and may borrow a sibling's columns)
    "farmops_client.cli": 9,
    "farmops_client.cli.__main__": 10,
    "farmops_client": 10,  # the package's face re-exports the public names
}


def layer(name: str) -> int:
    """``name``'s layer: its own line, else its package's ``.*`` line."""
    return LAYERS[name] if name in LAYERS else LAYERS[f"{name.rpartition('.')[0]}.*"]


def module_name(path: Path) -> str:
    parts = ["farmops_client", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "sql" not in p.parts}


def imports_of(name: str) -> set[str]:
    """farmops_client modules that ``name`` imports anywhere in its code (function bodies included)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            base = ".".join(filter(None, [base, node.module or ""]))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {m for m in found if m in MODULES and m != name}


def test_every_module_has_a_layer():
    wildcards = {name.removesuffix(".*") for name in LAYERS if name.endswith(".*")}
    unplaced = [m for m in MODULES if m not in LAYERS and m.rpartition(".")[0] not in wildcards]
    assert unplaced == []
    assert sorted(set(LAYERS) - set(MODULES) - {f"{w}.*" for w in wildcards}) == []


def test_no_import_cycle():
    graph = {name: imports_of(name) for name in MODULES}
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError naming the loop


def test_imports_only_go_down_the_layers():
    upward = [
        f"{name} -> {dep}"
        for name in MODULES
        for dep in imports_of(name)
        if layer(dep) >= layer(name)
        and not (
            layer(dep) == layer(name) in (LAYERS["farmops_client.assistant"], LAYERS["farmops_client.cli.*"])
        )
    ]
    assert upward == []


def test_the_choke_point_is_the_only_way_to_the_database():
    """Only db.py opens connections with psycopg.connect or applies errors.translate."""
    for name, path in MODULES.items():
        if name in ("farmops_client.db", "farmops_client.errors"):
            continue
        text = path.read_text(encoding="utf-8")
        assert "psycopg.connect(" not in text, name
        assert "translate(" not in text, name


def test_every_exception_class_lives_in_errors():
    elsewhere = []
    for name in MODULES:
        module = importlib.import_module(name)
        for obj in vars(module).values():
            is_exception = inspect.isclass(obj) and issubclass(obj, BaseException)
            if is_exception and obj.__module__ == name != "farmops_client.errors":
                elsewhere.append(f"{name}.{obj.__name__}")
    assert elsewhere == []


def test_ask_has_a_real_signature():
    params = inspect.signature(TenantSession.ask).parameters
    kinds = {p.kind for p in params.values()}
    assert inspect.Parameter.VAR_KEYWORD not in kinds and inspect.Parameter.VAR_POSITIONAL not in kinds
    assert list(params)[1] == "prompt"
    assert {"feature", "max_tokens", "model", "max_input_tokens", "k", "max_tool_turns", "request_id"} <= set(
        params
    )
    assert params["feature"].kind is inspect.Parameter.KEYWORD_ONLY


# -- the embedder is explicit ----------------------------------------------------------------------------
@pytest.fixture
def fake():
    """A scripted Bedrock that would answer both Converse and Titan calls."""
    return FakeBedrock(default=FakeBedrock.text("ok"))


def test_no_embedder_is_picked_silently(db, fake, admin):
    bedrock = fake_bedrock_client(fake)
    with farmops_client.connect(db.dsn(APP_LOGIN), bedrock=bedrock) as client:
        assert client.embedder is None
        farm = client.create_farm("Farm", "alice")
        with client.tenant(farm, "alice") as t:
            t.grant_credits(100, "test")
        with client.tenant(farm, "alice") as t:
            with pytest.raises(NotConfigured):
                t.search("anything")
            with pytest.raises(NotConfigured):
                t.ingest_document("doc", "text")
            with pytest.raises(NotConfigured):
                t.remember("a fact")
            with pytest.raises(NotConfigured):
                t.ask("hello")
    assert fake.seen() == []  # nothing was embedded or asked
    assert admin.execute("SELECT count(*) FROM farmops.ai_runs").fetchone()[0] == 0  # nothing reserved


def test_the_chosen_embedder_is_logged_and_its_model_stored_with_the_vectors(db, admin, caplog):
    caplog.set_level("INFO", logger="farmops_client")
    with farmops_client.connect(db.dsn(APP_LOGIN), embedder="lexical") as client:
        assert isinstance(client.embedder, LexicalEmbedder)
        farm = client.create_farm("Farm", "alice")
        with client.tenant(farm, "alice") as t:
            t.ingest_document("Vaccines", "Gumboro vaccine on day 14.")
            t.remember("Musa buys broilers on Fridays")
    assert f"embeddings by {LEXICAL_MODEL}" in caplog.text
    models = admin.execute("SELECT DISTINCT model, source_type FROM farmops.embeddings ORDER BY 2").fetchall()
    assert models == [(LEXICAL_MODEL, "document"), (LEXICAL_MODEL, "memory")]


def test_embedder_names():
    assert isinstance(embedder_named("lexical"), LexicalEmbedder)
    with pytest.raises(NotConfigured):
        embedder_named("titan")  # Titan needs a Bedrock client: no guessing credentials here
    with pytest.raises(ValueError):
        embedder_named("word2vec")


# -- create_app_login -------------------------------------------------------------------------------------
@pytest.fixture
def role_name(admin):
    """A fresh role name, dropped at teardown (roles are cluster-wide)."""
    name = f"farmops_test_login_{uuid.uuid4().hex[:8]}"
    yield name
    admin.execute(psycopg.sql.SQL("DROP ROLE IF EXISTS {}").format(psycopg.sql.Identifier(name)))


def role_row(admin, name):
    return admin.execute(
        "SELECT rolsuper, rolbypassrls, rolcanlogin, pg_has_role(oid, 'farmops_app', 'MEMBER'), "
        "rolpassword IS NOT NULL FROM pg_authid WHERE rolname = %s",
        [name],
    ).fetchone()


def test_create_app_login_is_idempotent(admin, role_name):
    assert create_app_login(admin, role_name) is True
    assert role_row(admin, role_name) == (False, False, True, True, False)
    assert create_app_login(admin, role_name, password="s3cret") is False
    assert role_row(admin, role_name) == (False, False, True, True, True)


def test_create_app_login_is_race_safe(connect, role_name):
    created = race(connect, [lambda conn: create_app_login(conn, role_name)] * 6, who="admin")
    assert [r for r in created if isinstance(r, Exception)] == []
    assert sorted(created) == [False] * 5 + [True]


def test_create_app_login_refuses_a_role_that_bypasses_rls(admin, role_name):
    admin.execute(psycopg.sql.SQL("CREATE ROLE {} LOGIN BYPASSRLS").format(psycopg.sql.Identifier(role_name)))
    with pytest.raises(FarmopsError, match="BYPASSRLS"):
        create_app_login(admin, role_name)


def test_the_async_session_has_every_operation_of_the_sync_one_with_the_same_parameters():
    from farmops_client.aio import AsyncClient, AsyncTenantSession
    from farmops_client.client import Client

    operations = [name for name, v in vars(TenantSession).items() if callable(v) and not name.startswith("_")]
    assert {"ask", "ask_stream", "confirm_draft", "grant_credits"} <= set(operations)
    for name in operations:
        twin = getattr(AsyncTenantSession, name, None)
        assert twin is not None, f"AsyncTenantSession lacks {name}"
        assert inspect.iscoroutinefunction(twin) or inspect.isasyncgenfunction(twin), name
        sync_params = list(inspect.signature(getattr(TenantSession, name)).parameters.values())[1:]
        async_params = list(inspect.signature(twin).parameters.values())[1:]
        assert [(p.name, p.kind, p.default) for p in sync_params] == [
            (p.name, p.kind, p.default) for p in async_params
        ], name
    for name in ("tenant", "tenant_from_token", "create_farm", "check_invariants", "connection", "close"):
        assert hasattr(Client, name) and hasattr(AsyncClient, name), name
