"""The farmops CLI's library commands: help, errors and exit codes, and a session through every listing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from support.tenancy import unexpected

from farmops_client.cli import main

ZERO_ID = "00000000-0000-0000-0000-000000000001"
COMMANDS = [
    ["farm", "create"], ["farm", "list"], ["member", "add"], ["credits", "grant"], ["credits", "balance"],
    ["credits", "ledger"], ["drafts", "list"], ["drafts", "show"], ["drafts", "confirm"],
    ["drafts", "discard"],
    ["kb", "add"], ["kb", "search"], ["ask"], ["runs", "list"], ["runs", "show"], ["check"], ["demo"],
    ["member", "remove"], ["member", "role"], ["autonomy", "show"], ["autonomy", "set"], ["kb", "list"],
    ["kb", "delete"], ["kb", "global", "add"], ["kb", "global", "list"], ["kb", "global", "delete"],
    ["feedback", "give"], ["feedback", "list"], ["evals", "list"], ["evals", "rules"],
    ["recommendations", "list"], ["recommendations", "decide"], ["drafts", "watch"],
    ["maintenance", "expire"], ["login", "list"],
    ["policy", "list"], ["policy", "set"], ["policy", "drop"], ["policy", "explain"], ["policy", "time-zone"],
    ["approvals", "list"],
    ["approvals", "approve"], ["approvals", "reject"], ["limits", "show"], ["limits", "set"],
    ["db", "start"], ["migrate"], ["install-script"], ["errors"],
]  # fmt: skip


def run(*args, env=None):
    """Invoke the CLI in-process; returns click's Result."""
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_help_lists_every_command():
    top = run("--help").output
    for group in {c[0] for c in COMMANDS}:
        assert group in top
    for cmd in COMMANDS:
        result = run(*cmd, "--help")
        assert result.exit_code == 0, cmd
        assert "Usage:" in result.output


def test_bad_dsn_exits_3_with_one_line_and_no_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "farmops_client.cli", "credits", "balance", "--farm", ZERO_ID, "--user", "y",
         "--dsn", "postgresql://nobody@/nodb?host=/nonexistent&port=1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 3
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("farmops: DatabaseUnavailable: cannot connect")


def test_missing_farm_is_a_usage_error(db):
    result = CliRunner().invoke(main, ["credits", "balance", "--dsn", db.dsn()], env={"FARMOPS_FARM": ""})
    assert result.exit_code == 2
    assert "--farm" in result.output


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


def test_farm_member_credits_and_listings(cli):
    farm = cli("farm", "create", "Kaduna Poultry", "--owner", "alice").output.strip()
    who = ["--farm", farm, "--user", "alice"]
    assert cli("member", "add", "musa", "worker", *who).output.strip() == "added musa as worker"
    members = json.loads(cli("member", "list", "--json", *who).output)
    assert [(m["user_id"], m["role"]) for m in members] == [("alice", "owner"), ("musa", "worker")]
    farms = json.loads(cli("farm", "list", "--json").output)
    assert [f["name"] for f in farms] == ["Kaduna Poultry"] and farms[0]["members"] == 2
    assert "Kaduna Poultry" in cli("farm", "list").output


def test_refusals_exit_1_with_the_sqlstate(cli):
    farm = cli("farm", "create", "A", "--owner", "alice").output.strip()
    result = cli("member", "add", "eve", "owner", "--farm", farm, "--user", "mallory", ok=False)
    assert result.exit_code == 1
    assert result.output.strip().endswith("[OF002]") and result.output.count("\n") == 1


def test_superuser_dsn_still_acts_under_rls(cli, db):
    farm_a = cli("farm", "create", "A", "--owner", "alice").output.strip()
    cli("farm", "create", "B", "--owner", "bob")
    members = json.loads(cli("member", "list", "--json", "--farm", farm_a, "--user", "alice").output)
    assert [m["user_id"] for m in members] == [
        "alice"
    ]  # B's owner is invisible although the DSN is superuser


def test_check_as_operator_and_as_member(cli):
    farm = cli("farm", "create", "A", "--owner", "alice").output.strip()
    # Exit 1 while check_tenancy still reports the known offenders (tests/tenancy_support.py).
    operator = cli("check", ok=False)
    assert operator.output.startswith("invariants hold\n")
    member = cli("check", "--json", "--farm", farm, "--user", "alice", ok=False)
    report = json.loads(member.output)
    assert report["invariants"] == [] and unexpected(report["tenancy"]) == set()
    assert operator.exit_code == member.exit_code == (1 if report["tenancy"] else 0)


def test_a_whole_session_through_the_cli(cli, tmp_path):
    farm = cli("farm", "create", "Kaduna Poultry", "--owner", "alice").output.strip()
    who = ["--farm", farm, "--user", "alice"]
    assert cli("credits", "grant", "100", "--reason", "test", *who).output.strip() == "100"
    assert cli("credits", "balance", *who).output.strip() == "100"
    doc = tmp_path / "vaccines.md"
    doc.write_text("Gumboro vaccine is given to broilers on day 14.", encoding="utf-8")
    cli("kb", "add", str(doc), *who)
    hits = json.loads(cli("kb", "search", "gumboro broilers", "--json", *who).output)
    assert hits and "Gumboro" in hits[0]["content"]
    result = json.loads(cli("ask", "When is gumboro due?", "--fake", "--json", *who).stdout)
    assert result["status"] == "succeeded" and result["text"] == "(scripted) noted."
    runs = json.loads(cli("runs", "list", "--json", *who).output)
    assert [r["id"] for r in runs] == [result["run_id"]]
    shown = json.loads(cli("runs", "show", result["run_id"], "--json", *who).output)  # the lineage DAG
    ledger_nodes = [n for n in shown["nodes"] if n["kind"] == "ledger"]
    assert ledger_nodes[0]["leg"] == "reserve" and any(n["kind"] == "retrieval" for n in shown["nodes"])
    tree = cli("runs", "show", result["run_id"], *who).output
    assert tree.startswith(f"run {result['run_id']} succeeded") and "ledger #" in tree
    ledger = json.loads(cli("credits", "ledger", "--json", *who).output)
    assert [leg["kind"] for leg in ledger][:2] == ["grant", "reserve"]
    assert json.loads(cli("drafts", "list", "--json", *who).output) == []
    missing = cli("drafts", "show", "00000000-0000-0000-0000-000000000000", *who, ok=False)
    assert missing.exit_code == 1
