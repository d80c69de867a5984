"""``farmops pii`` and ``farmops guards``: a farm's trust settings through the CLI (as farmops_app)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from farmops_client.cli import main


@pytest.fixture
def cli(db):
    """Run the CLI against the test database."""

    def _run(*args, ok=True):
        result = CliRunner().invoke(
            main, [*args, "--dsn", db.dsn()], env={"COLUMNS": "200"}, catch_exceptions=False
        )
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return _run


def test_pii_policy_and_guard_rules_round_trip(cli):
    farm = cli("farm", "create", "Kaduna Poultry", "--owner", "alice").output.strip()
    who = ["--farm", farm, "--user", "alice"]
    assert json.loads(cli("pii", "policy", "--json", *who).output)[0]["keep_kinds"] == []
    got = json.loads(
        cli("pii", "policy", "--set", "--keep", "phone", "--keep", "email", "--json", *who).output
    )
    assert got[0]["keep_kinds"] == ["email", "phone"]
    bad = cli("pii", "policy", "--set", "--keep", "name", *who, ok=False)
    assert bad.exit_code == 1 and bad.output.strip().endswith("[OF305]")
    assert json.loads(cli("pii", "counts", "--json", *who).output) == []

    cli("guards", "set", "no_recipes", "off_topic", "chicken recipe", "--stage", "input", *who)
    rules = json.loads(cli("guards", "list", "--json", *who).output)
    assert [(r["name"], r["stages"], r["action"], r["enabled"]) for r in rules] == [
        ("no_recipes", ["input"], "block", True)
    ]
    assert cli(
        "guards", "allow", "grandma", "--reason", "family", "--rule", "no_recipes", *who
    ).output.strip()
    bad = cli("guards", "set", "broken", "off_topic", "chicken (recipe", *who, ok=False)
    assert bad.exit_code == 1 and bad.output.strip().endswith("[OF306]")
    cli("guards", "drop", "no_recipes", *who)
    assert json.loads(cli("guards", "list", "--json", *who).output) == []
    missing = cli("guards", "drop", "no_recipes", *who, ok=False)
    assert missing.output.strip().endswith("[OF307]")
    assert json.loads(cli("guards", "events", "--json", *who).output) == []


def test_only_owners_change_the_settings(cli):
    farm = cli("farm", "create", "A", "--owner", "alice").output.strip()
    cli("member", "add", "musa", "manager", "--farm", farm, "--user", "alice")
    who = ["--farm", farm, "--user", "musa"]
    assert cli("pii", "policy", "--set", "--keep", "phone", *who, ok=False).output.strip().endswith("[OF003]")
    assert cli("guards", "set", "r", "c", "x", *who, ok=False).output.strip().endswith("[OF003]")
    assert json.loads(cli("pii", "policy", "--json", *who).output)[0]["keep_kinds"] == []
