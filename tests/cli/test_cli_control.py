"""The spend-control commands: farmops policy list|set|drop|explain, approvals, limits show|set."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from farmops_client.cli import main


@pytest.fixture
def cli(db):
    """Run the CLI against the test database (superuser DSN; the CLI acts as farmops_app)."""

    def _run(*args, ok=True):
        result = CliRunner().invoke(
            main, [*args, "--dsn", db.dsn()], env={"COLUMNS": "200"}, catch_exceptions=False
        )
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return _run


@pytest.fixture
def farm(cli):
    """A farm owned by alice with a worker wes and 100 credits; the --farm/--user of alice."""
    farm = cli("farm", "create", "Kaduna Poultry", "--owner", "alice").output.strip()
    cli("member", "add", "wes", "worker", "--farm", farm, "--user", "alice")
    cli("credits", "grant", "100", "--reason", "test", "--farm", farm, "--user", "alice")
    return farm


def test_policy_commands(cli, farm):
    who = ["--farm", farm, "--user", "alice"]
    when = json.dumps([{"attribute": "credits", "op": "gte", "value": 50}])
    shown = cli(
        "policy", "set", "no-big", "--action", "reserve", "--decision", "deny", "--when", when, *who
    ).output
    assert "no-big" in shown
    cli("policy", "set", "mask-phones", "--action", "reserve", "--decision", "mask", "--mask", "phone", *who)
    rules = json.loads(cli("policy", "list", "--json", *who).output)
    assert [(r["name"], r["explanation"]) for r in rules] == [  # the same rank: by name
        ("mask-phones", "keep phone masked in reserve (always)"),
        ("no-big", "deny reserve when credits >= 50"),
    ]
    assert cli("policy", "list", "--format", "csv", *who).output.splitlines()[0] == (
        "source,action,rank,name,decision,explanation,updated_by"
    )
    assert "no-big" in cli("policy", "list", *who).output
    explained = json.loads(cli("policy", "explain", "reserve", "--attr", "credits=60", "--json", *who).output)
    assert (explained["decision"], explained["rule_name"], explained["masked_kinds"]) == (
        "deny",
        "no-big",
        ["phone"],
    )
    assert cli("policy", "drop", "no-big", *who).output.strip() == "dropped no-big"
    missing = cli("policy", "drop", "no-big", *who, ok=False)
    assert missing.exit_code == 1 and missing.output.splitlines()[0].endswith("[OF404]")
    # a worker may read but not write rules; a malformed rule is a refusal, not a traceback
    assert cli("policy", "list", "--json", "--farm", farm, "--user", "wes").exit_code == 0
    deny_x = ["policy", "set", "x", "--action", "reserve", "--decision", "deny"]
    refused = cli(*deny_x, "--farm", farm, "--user", "wes", ok=False)
    assert refused.exit_code == 1 and refused.output.splitlines()[0].endswith("[OF003]")
    bad = cli(*deny_x, "--when", '[{"attribute": "x"}]', *who, ok=False)
    assert bad.exit_code == 1 and bad.output.splitlines()[0].endswith("[OF006]")
    assert cli(*deny_x, "--when", "{", *who, ok=False).exit_code == 2
    assert cli("policy", "time-zone", "Africa/Lagos", *who).output.strip() == "Africa/Lagos"
    assert (
        cli("policy", "time-zone", "Mars/Olympus", *who, ok=False).output.splitlines()[0].endswith("[OF006]")
    )


def test_limits_commands(cli, farm):
    who = ["--farm", farm, "--user", "alice"]
    assert "rate limits" in cli("limits", "set", "--requests", "5", "--tokens", "none", *who).output
    cli("limits", "set", "--requests", "2", "--scope", "member", "--member", "wes", *who)
    rows = json.loads(cli("limits", "show", "--json", *who).output)
    by_scope = {(r["scope"], r["user_id"]): r for r in rows}
    assert by_scope[("farm", None)]["requests_per_minute"] == 5
    assert by_scope[("member", "wes")]["requests_per_minute"] == 2
    assert cli("limits", "show", "--format", "csv", *who).output.startswith("scope,user_id,")
    refused = cli("limits", "set", "--requests", "0", *who, ok=False)
    assert refused.exit_code == 1 and refused.output.splitlines()[0].endswith("[OF006]")
    assert cli("limits", "set", "--requests", "lots", *who, ok=False).exit_code == 2


def test_approvals_commands(cli, farm, app):
    who = ["--farm", farm, "--user", "alice"]
    cli(
        "policy",
        "set",
        "hold",
        "--action",
        "reserve",
        "--decision",
        "require_approval",
        "--role",
        "worker",
        *who,
    )
    run = app.execute(
        "SELECT (farmops.reserve_run(%s, 'wes', 'chat', 'm', p_credits => 5)).id", [farm]
    ).fetchone()[0]
    held = json.loads(cli("approvals", "list", "--json", *who).output)
    assert [h["id"] for h in held] == [str(run)] and held[0]["approval_rule"] == "hold"
    assert cli("approvals", "approve", str(run), *who).output.strip() == f"approved {run}"
    assert json.loads(cli("approvals", "list", "--json", *who).output) == []
    again = cli("approvals", "reject", str(run), *who, ok=False)
    assert again.exit_code == 1 and again.output.splitlines()[0].endswith("[OF103]")
