"""The CLI's commands against the real database, as the application login (the CLI adds SET LOCAL ROLE
farmops_app in every transaction); the package owner's commands with a DSN that may act as farmops_owner.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner
from psycopg.types.json import Jsonb
from support import APP_LOGIN, tenant
from support.write_path import VALID

from farmops_client.cli import main

SALE, NOTE = VALID["sale"][0], VALID["note"][0]


def invoke(dsn: str, *args: str, ok: bool = True, columns: int = 200, env=None, stdin: str | None = None):
    result = CliRunner().invoke(
        main,
        [*args, "--dsn", dsn],
        env={"COLUMNS": str(columns), "FARMOPS_FORMAT": "", **(env or {})},
        input=stdin,
        catch_exceptions=False,
    )
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def cli(db):
    """``cli(*args)``: the CLI as the application login; ``cli.owner(*args)`` with a superuser DSN."""

    def run(*args, **kwargs):
        return invoke(db.dsn(APP_LOGIN), *args, **kwargs)

    run.owner = lambda *args, **kwargs: invoke(db.dsn(), *args, **kwargs)
    return run


@pytest.fixture
def farm(cli) -> list[str]:
    """A farm of alice's with 100 credits: the ``--farm/--user`` options acting as alice."""
    farm_id = cli("farm", "create", "Kaduna Poultry", "--owner", "alice").stdout.strip()
    who = ["--farm", farm_id, "--user", "alice"]
    cli("credits", "grant", "100", "--reason", "test", *who)
    return who


def one_line_refusal(result, sqlstate: str | None) -> None:
    """Exit 1 with one line ending in the SQLSTATE (``None``: a refusal of the client, no SQLSTATE)."""
    assert result.exit_code == 1, result.output
    assert len(result.stderr.splitlines()) == 1, result.stderr
    if sqlstate:
        assert result.stderr.rstrip().endswith(f"[{sqlstate}]"), result.stderr


def runs_of(admin) -> list[tuple]:
    return admin.execute("SELECT input_summary, status FROM farmops.ai_runs ORDER BY reserved_at").fetchall()


# -- members ------------------------------------------------------------------------------------------------


def test_member_role_and_remove(cli, farm):
    cli("member", "add", "musa", "worker", *farm)
    assert cli("member", "role", "musa", "manager", *farm).stdout.strip() == "musa is now manager"
    members = json.loads(cli("member", "list", "--json", *farm).stdout)
    assert [(m["user_id"], m["role"]) for m in members] == [("alice", "owner"), ("musa", "manager")]
    assert cli("member", "remove", "musa", *farm).stdout.strip() == "removed musa"
    assert [m["user_id"] for m in json.loads(cli("member", "list", "--format", "json", *farm).stdout)] == [
        "alice"
    ]
    one_line_refusal(cli("member", "role", "ghost", "worker", *farm, ok=False), "OF002")  # never adds
    one_line_refusal(cli("member", "remove", "ghost", *farm, ok=False), "OF002")
    one_line_refusal(cli("member", "remove", "alice", *farm, ok=False), "OF005")
    one_line_refusal(cli("member", "role", "alice", "viewer", *farm, ok=False), "OF005")


def test_member_commands_of_a_non_owner_and_of_another_farm(cli, farm):
    cli("member", "add", "wes", "worker", *farm)
    as_wes = [farm[0], farm[1], "--user", "wes"]
    one_line_refusal(cli("member", "remove", "alice", *as_wes, ok=False), "OF003")
    other = cli("farm", "create", "B", "--owner", "bob").stdout.strip()
    one_line_refusal(
        cli("member", "role", "bob", "viewer", *farm[:1], other, "--user", "alice", ok=False), "OF002"
    )


# -- autonomy -----------------------------------------------------------------------------------------------


def test_autonomy_show_and_set(cli, farm):
    shown = json.loads(cli("autonomy", "show", "--json", *farm).stdout)
    assert (shown["ai_autonomy"], shown["draft_ttl"]) == ("draft", "P1D")  # ISO 8601: 24 hours
    assert {t["record_type"]: t["effective"] for t in shown["types"]}["note"] == "draft"
    cli(
        "autonomy",
        "set",
        "--tier",
        "auto",
        "--auto",
        "note,task",
        "--type",
        "task=draft",
        "--draft-ttl",
        "90m",
        *farm,
    )
    shown = json.loads(cli("autonomy", "show", "--json", *farm).stdout)
    effective = {t["record_type"]: t["effective"] for t in shown["types"]}
    assert (effective["note"], effective["task"], effective["sale"]) == ("auto", "draft", "draft")
    assert shown["draft_ttl"] == "PT1H30M" and shown["ai_record_autonomy"] == {"task": "draft"}
    cli("autonomy", "set", "--type", "note=suggest", *farm)  # keeps the task override
    assert json.loads(cli("autonomy", "show", "--json", *farm).stdout)["ai_record_autonomy"] == {
        "task": "draft",
        "note": "suggest",
    }
    cli("autonomy", "set", "--clear-types", "--draft-ttl", "P2D", *farm)
    shown = json.loads(cli("autonomy", "show", "--json", *farm).stdout)
    assert shown["ai_record_autonomy"] == {} and shown["draft_ttl"] == "P2D"
    table = cli("autonomy", "show", *farm).stdout
    assert "draft_ttl" in table and "P2D" in table and "autonomy per record type" in table
    rows = list(csv.DictReader(io.StringIO(cli("autonomy", "show", "--format", "csv", *farm).stdout)))
    assert {r["record_type"] for r in rows} >= {"sale", "note", "task"}


def test_autonomy_refusals_show_the_database_message(cli, farm):
    one_line_refusal(cli("autonomy", "set", "--draft-ttl", "1m", *farm, ok=False), "OF006")
    one_line_refusal(cli("autonomy", "set", "--auto", "nosuchtype", *farm, ok=False), "OF203")
    cli("member", "add", "mia", "manager", *farm)
    one_line_refusal(
        cli("autonomy", "set", "--tier", "auto", farm[0], farm[1], "--user", "mia", ok=False), "OF003"
    )
    assert json.loads(cli("autonomy", "show", "--json", *farm).stdout)["ai_autonomy"] == "draft"


# -- ask, drafts -------------------------------------------------------------------------------------------


@pytest.fixture
def script(tmp_path):
    """A scripted model: one turn proposes a sale (a draft) and a note, the next answers."""
    path = tmp_path / "turns.json"
    path.write_text(
        json.dumps(
            [
                {"tools": [{"name": "create_sale", "input": SALE}, {"name": "create_note", "input": NOTE}]},
                {"text": "Recorded the sale for your confirmation."},
            ]
        ),
        encoding="utf-8",
    )
    return path


def test_ask_with_a_script_drafts_offline_and_drafts_confirm_in_bulk(cli, farm, script, admin):
    result = json.loads(
        cli("ask", "Sold eggs to Mama Ngozi", "--fake", "--script", str(script), "--json", *farm).stdout
    )
    assert result["status"] == "succeeded" and result["text"] == "Recorded the sale for your confirmation."
    assert len(result["drafts"]) == 2 and result["records"] == []
    listed = json.loads(cli("drafts", "list", "--json", *farm).stdout)
    assert {d["record_type"] for d in listed} == {"sale", "note"}
    assert all("T" in d["created_at"] and "T" in d["expires_at"] for d in listed)  # ISO 8601
    rows = list(csv.DictReader(io.StringIO(cli("drafts", "list", "--format", "csv", *farm).stdout)))
    assert {r["id"] for r in rows} == set(result["drafts"]) and "T" in rows[0]["created_at"]
    missing = "00000000-0000-0000-0000-000000000000"
    bulk = cli("drafts", "confirm", *result["drafts"], missing, *farm, ok=False)
    assert bulk.exit_code == 1
    assert sorted(bulk.stdout.splitlines()) == sorted(
        f"confirmed {d} -> record {r}"
        for d, r in admin.execute(
            "SELECT id, record_id FROM farmops.assistant_drafts WHERE status = 'confirmed'"
        )
    )
    assert len(bulk.stdout.splitlines()) == 2
    assert f"{missing}: DraftNotFound" in bulk.stderr and "1 of 3 drafts not confirmed" in bulk.stderr
    again = cli("drafts", "confirm", result["drafts"][0], *farm, ok=False)
    one_line_refusal(again, "OF103")
    assert json.loads(cli("drafts", "list", "--json", *farm).stdout) == []
    assert admin.execute("SELECT count(*) FROM farmops.sale_records").fetchone() == (1,)


def test_ask_reads_stdin_and_files_and_refuses_an_empty_prompt_before_any_charge(cli, farm, tmp_path, admin):
    cli("ask", "-", "--fake", *farm, stdin="When is gumboro due?\n")
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("What did we sell last week?", encoding="utf-8")
    cli("ask", "--file", str(prompt), "--fake", *farm)
    summaries = [summary for summary, _ in runs_of(admin)]
    assert len(summaries) == 2 and "gumboro" in summaries[0] and "sell" in summaries[1]
    balance = cli("credits", "balance", *farm).stdout
    for args, stdin in ((["-"], "  \n"), (["   "], None)):
        refused = cli("ask", *args, "--fake", *farm, ok=False, stdin=stdin)
        assert refused.exit_code == 2 and "prompt is empty" in refused.stderr
    assert len(runs_of(admin)) == 2 and cli("credits", "balance", *farm).stdout == balance


def test_an_expired_draft_shows_the_database_hint(cli, farm, admin):
    run = json.loads(cli("ask", "x", "--fake", "--json", *farm).stdout)["run_id"]
    draft = admin.execute(  # backdated by the superuser: no function makes an expired pending draft
        "INSERT INTO farmops.assistant_drafts (farm_id, ai_run_id, record_type, payload, created_by,"
        " created_at, expires_at) VALUES (%s, %s, 'note', %s, 'bot', now() - interval '2 hours',"
        " now() - interval '1 hour') RETURNING id",
        [farm[1], run, Jsonb(NOTE)],
    ).fetchone()[0]
    refused = cli("drafts", "confirm", str(draft), *farm, ok=False)
    assert refused.exit_code == 1
    first, hint = refused.stderr.splitlines()
    assert first.endswith("[OF103]") and "expired" in first
    assert hint == "  hint: Expired drafts cannot be confirmed; ask the assistant again."


def test_ids_are_never_folded_in_a_narrow_terminal(cli, farm, script):
    drafts = json.loads(cli("ask", "x", "--fake", "--script", str(script), "--json", *farm).stdout)["drafts"]
    narrow = cli("drafts", "list", *farm, columns=40).stdout
    for draft in drafts:
        assert any(draft in line for line in narrow.splitlines()), narrow
    ledger = cli("credits", "ledger", *farm, columns=40).stdout
    run = json.loads(cli("runs", "list", "--json", *farm).stdout)[0]["id"]
    assert any(run in line for line in ledger.splitlines()), ledger


def test_drafts_watch_prints_each_new_draft_of_its_farm(db, cli, farm, script):
    other = cli("farm", "create", "B", "--owner", "bob").stdout.strip()
    cli("credits", "grant", "100", "--reason", "t", "--farm", other, "--user", "bob")
    watcher = subprocess.Popen(
        [sys.executable, "-m", "farmops_client.cli", "drafts", "watch", "--count", "2", "--timeout", "60",
         "--format", "json", *farm, "--dsn", db.dsn(APP_LOGIN)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "FARMOPS_FORMAT": ""},
    )  # fmt: skip
    try:
        assert watcher.stderr.readline().startswith(f"watching farmops_drafts_{farm[1]}")
        # Farm B's draft first: never shown to alice's watcher.
        cli("ask", "x", "--fake", "--script", str(script), "--farm", other, "--user", "bob")
        mine = json.loads(cli("ask", "y", "--fake", "--script", str(script), "--json", *farm).stdout)[
            "drafts"
        ]
        out, err = watcher.communicate(timeout=60)
    finally:
        watcher.kill()
    assert watcher.returncode == 0, err
    shown = [json.loads(line) for line in out.splitlines()]
    assert [d["id"] for d in shown] == mine and {d["record_type"] for d in shown} == {"sale", "note"}


def test_drafts_watch_pending_prints_the_backlog_first(cli, farm, script):
    made = json.loads(cli("ask", "x", "--fake", "--script", str(script), "--json", *farm).stdout)["drafts"]
    result = cli("drafts", "watch", "--pending", "--timeout", "0.5", "--format", "csv", *farm)
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert sorted(r["id"] for r in rows) == sorted(made) and all("T" in r["created_at"] for r in rows)


def test_drafts_watch_stops_at_its_timeout(cli, farm):
    started = time.monotonic()
    result = cli("drafts", "watch", "--timeout", "0.5", *farm)
    assert result.stdout == "" and time.monotonic() - started < 30


# -- feedback, evals, recommendations ---------------------------------------------------------------------


def test_feedback_and_evals(cli, farm, app):
    run = json.loads(cli("ask", "hello", "--fake", "--json", *farm).stdout)["run_id"]
    assert cli("feedback", "give", run, "--down", "--comment", "too vague", *farm).stdout.strip() == (
        f"down on run {run} by alice"
    )
    cli("feedback", "give", run, "--up", *farm)  # replaces the first
    given = json.loads(cli("feedback", "list", "--json", *farm).stdout)
    assert [(f["ai_run_id"], f["thumbs_up"], f["comment"]) for f in given] == [(run, True, None)]
    one_line_refusal(
        cli("feedback", "give", "00000000-0000-0000-0000-000000000000", "--up", *farm, ok=False), "OF102"
    )
    with tenant(app, farm[1], "alice"):
        app.execute("SELECT * FROM farmops.evaluate_run(%s, %s)", [run, "Call me at 0803 123 4567"])
    results = json.loads(cli("evals", "list", "--run", run, "--json", *farm).stdout)
    assert results and {r["ai_run_id"] for r in results} == {run}
    rules = json.loads(cli("evals", "rules", "--json", *farm).stdout)
    assert {r["rule_name"] for r in results} <= {r["name"] for r in rules}
    failed = json.loads(cli("evals", "list", "--failed", "--json", *farm).stdout)
    assert all(not r["passed"] for r in failed)


def test_recommendations_list_and_decide(cli, app, wfarm):
    with tenant(app, wfarm.id, "bot"):
        rec = app.execute(
            "SELECT farmops.recommend(%s, 'Vaccinate pen 3', 'Gumboro is due on day 14.')", [wfarm.run]
        ).fetchone()[0]
    who = ["--farm", str(wfarm.id), "--user", "alice"]
    listed = json.loads(cli("recommendations", "list", "--json", *who).stdout)
    assert [(r["id"], r["status"]) for r in listed] == [(str(rec), "pending")]
    one_line_refusal(
        cli("recommendations", "decide", str(rec), "--approve", who[0], who[1], "--user", "vic", ok=False),
        "OF003",
    )
    assert cli(
        "recommendations", "decide", str(rec), "--reject", "--reason", "not yet", *who
    ).stdout.strip() == (f"rejected {rec}")
    one_line_refusal(cli("recommendations", "decide", str(rec), "--approve", *who, ok=False), "OF103")
    assert json.loads(cli("recommendations", "list", "--json", *who).stdout) == []
    everything = json.loads(cli("recommendations", "list", "--status", "all", "--json", *who).stdout)
    assert [(r["status"], r["decision_reason"]) for r in everything] == [("rejected", "not yet")]


# -- knowledge ----------------------------------------------------------------------------------------------


def test_kb_list_and_delete(cli, farm, tmp_path):
    doc = tmp_path / "vaccines.md"
    doc.write_text("Gumboro vaccine is given to broilers on day 14.\n\n" * 200, encoding="utf-8")
    added = invoke_with_progress(cli, "kb", "add", str(doc), *farm)
    doc_id = added.stdout.strip()
    assert "embedding" in added.stderr  # the progress bar (forced: the test has no terminal)
    listed = json.loads(cli("kb", "list", "--json", *farm).stdout)
    assert [(d["id"], d["title"]) for d in listed] == [(doc_id, "vaccines.md")] and listed[0]["chunks"] > 1
    assert cli("kb", "delete", doc_id, *farm).stdout.strip() == f"deleted {doc_id}"
    assert json.loads(cli("kb", "list", "--json", *farm).stdout) == []
    one_line_refusal(cli("kb", "delete", doc_id, *farm, ok=False), "OF302")


def invoke_with_progress(cli, *args):
    return cli(*args, env={"FARMOPS_PROGRESS": "1"})


def test_kb_global_add_list_delete_as_the_package_owner(cli, farm, tmp_path):
    doc = tmp_path / "biosecurity.md"
    doc.write_text("Disinfect boots at the door of every poultry house.", encoding="utf-8")
    doc_id = cli.owner("kb", "global", "add", str(doc), "--title", "Biosecurity").stdout.strip()
    listed = json.loads(cli.owner("kb", "global", "list", "--json").stdout)
    assert [(d["id"], d["title"], d["chunks"]) for d in listed] == [(doc_id, "Biosecurity", 1)]
    hits = json.loads(cli("kb", "search", "disinfect boots", "--json", *farm).stdout)
    assert hits and "Disinfect" in hits[0]["content"]
    refused = cli("kb", "global", "delete", doc_id, ok=False)  # the app login may not write it
    assert (
        refused.exit_code == 1 and "farmops_owner" in refused.stderr and len(refused.stderr.splitlines()) == 1
    )
    assert cli.owner("kb", "global", "delete", doc_id).stdout.strip() == f"deleted {doc_id}"
    assert json.loads(cli.owner("kb", "global", "list", "--json").stdout) == []
    one_line_refusal(cli("kb", "global", "list", ok=False), None)
    one_line_refusal(cli.owner("kb", "global", "delete", doc_id, ok=False), "OF302")


# -- the demo -----------------------------------------------------------------------------------------------


def test_demo_reuses_its_farms_on_a_second_run(db, admin):
    first = invoke(db.dsn(), "demo")
    second = invoke(db.dsn(), "demo")
    assert "reusing farm" not in first.stdout and second.stdout.count("reusing farm") == 2
    farms = admin.execute("SELECT name, count(*) FROM farmops.farms GROUP BY name ORDER BY name").fetchall()
    assert farms == [("Kaduna Poultry", 1), ("Lagos Layers", 1)]


def test_a_refusal_shows_the_database_detail(cli, farm, script):
    draft = json.loads(cli("ask", "x", "--fake", "--script", str(script), "--json", *farm).stdout)["drafts"][
        0
    ]
    refused = cli("drafts", "confirm", draft, "--edits", '{"bogus": 1}', *farm, ok=False)
    one_line_refusal(refused, "OF202")
    assert "additionalProperties is false" in refused.stderr
