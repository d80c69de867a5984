"""Capabilities: the role-to-capability table is the only place that says who may do what; README
prints it; require_capability() is the one check, failing closed."""

from __future__ import annotations

import re

import psycopg
import pytest
from conftest import REPO, tenant
from credit_helpers import add_member

ROLES = ["owner", "manager", "worker", "viewer", "agent"]


def readme_matrix() -> set[tuple[str, str]]:
    text = (REPO / "README.md").read_text()
    block = text.split("<!-- capability-matrix:start -->")[1].split("<!-- capability-matrix:end -->")[0]
    rows = [line for line in block.splitlines() if line.startswith("| `")]
    pairs = set()
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        capability = cells[0].strip("`")
        for role, cell in zip(ROLES, cells[1:], strict=True):
            assert cell in ("yes", "-"), line
            if cell == "yes":
                pairs.add((role, capability))
    return pairs


def test_readme_prints_the_capability_table(app):
    table = set(app.execute("SELECT role, capability FROM farmops.role_capabilities").fetchall())
    assert readme_matrix() == table


def test_no_function_body_names_a_role():
    """Role sets live in farmops.role_capabilities only (the creator of a farm is its first owner)."""
    pattern = re.compile(r"'(owner|manager|worker|viewer|agent)'")
    creator = "VALUES (v_farm_id, v_owner, 'owner');"
    hits = []
    for path in sorted((REPO / "sql" / "functions").rglob("*.sql")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line) and not line.lstrip().startswith("--") and creator not in line:
                hits.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert hits == []


@pytest.mark.parametrize("role", ROLES)
def test_require_capability_follows_the_table(app, farm, role):
    add_member(app, farm, "member", role)
    held = {
        c for (c,) in app.execute("SELECT capability FROM farmops.role_capabilities WHERE role = %s", [role])
    }
    every = {c for (c,) in app.execute("SELECT DISTINCT capability FROM farmops.role_capabilities")}
    for capability in sorted(every):
        with tenant(app, farm, "member"):
            assert app.execute("SELECT farmops.has_capability(%s)", [capability]).fetchone() == (
                capability in held,
            )
        if capability in held:
            with tenant(app, farm, "member"):
                got = app.execute("SELECT farmops.require_capability(%s)", [capability]).fetchone()
            assert got == (farm,)
        else:
            with pytest.raises(psycopg.Error) as excinfo, tenant(app, farm, "member"):
                app.execute("SELECT farmops.require_capability(%s)", [capability])
            assert excinfo.value.sqlstate == "OF003"
            assert capability in excinfo.value.diag.message_primary


def test_require_capability_without_a_context_or_with_a_typo(app, farm):
    with pytest.raises(psycopg.Error) as excinfo:
        app.execute("SELECT farmops.require_capability('run_ai')")
    assert excinfo.value.sqlstate == "OF001"
    assert app.execute("SELECT farmops.has_capability('run_ai')").fetchone() == (False,)
    with pytest.raises(psycopg.Error) as excinfo, tenant(app, farm, "alice"):
        app.execute("SELECT farmops.require_capability('run_aii')")
    assert excinfo.value.sqlstate == "OF006"


def test_add_member_accepts_exactly_the_roles_of_the_table(app, farm):
    with pytest.raises(psycopg.Error) as excinfo:
        add_member(app, farm, "eve", "admin")
    assert excinfo.value.sqlstate == "OF006"
    assert "agent, manager, owner, viewer, worker" in excinfo.value.diag.message_primary
