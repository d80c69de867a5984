"""Every command's bad input exits 2 with ONE line on stderr, before anything connects.

The DSN points nowhere: a command that tried to connect would exit 3 instead, so each case also
proves the check runs before the database is reached (and so before anything is reserved or charged).
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from farmops_client.cli import main

NOWHERE = "postgresql://nobody@/nodb?host=/nonexistent&port=1"
FARM = "00000000-0000-0000-0000-0000000000aa"
ID = "00000000-0000-0000-0000-0000000000bb"
WHO = ["--farm", FARM, "--user", "alice"]


@pytest.fixture
def files(tmp_path):
    """Files the cases name: an empty prompt, a bad script, a script of a bad turn, a binary file."""
    (tmp_path / "empty.txt").write_text("  \n\t", encoding="utf-8")
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    (tmp_path / "badturn.json").write_text('[{"tools": [{"input": {}}]}]', encoding="utf-8")
    (tmp_path / "notalist.json").write_text('{"text": "hi"}', encoding="utf-8")
    (tmp_path / "ok.json").write_text('[{"text": "hi"}]', encoding="utf-8")
    (tmp_path / "binary.bin").write_bytes(b"\xff\xfe\x00bad")
    return tmp_path


CASES = {
    # ids and numbers
    "member add --farm xyz": (["member", "add", "zed", "worker", "--farm", "xyz", "--user", "a"], "UUID"),
    "drafts show xyz": (["drafts", "show", "xyz", *WHO], "not a UUID"),
    "drafts discard xyz": (["drafts", "discard", "xyz", *WHO], "not a UUID"),
    "credits grant 3000000000": (["credits", "grant", "3000000000", "--reason", "r", *WHO], "3000000000"),
    "credits grant 0": (["credits", "grant", "0", "--reason", "r", *WHO], "range"),
    "credits grant abc": (["credits", "grant", "abc", "--reason", "r", *WHO], "not a valid integer"),
    "credits ledger --limit -1": (["credits", "ledger", "--limit", "-1", *WHO], "range"),
    "credits ledger --run x": (["credits", "ledger", "--run", "x", *WHO], "not a UUID"),
    "kb search -k 99999999999": (["kb", "search", "x", "-k", "99999999999", *WHO], "range"),
    "kb delete notauuid": (["kb", "delete", "notauuid", *WHO], "not a UUID"),
    "kb global delete notauuid": (["kb", "global", "delete", "notauuid"], "not a UUID"),
    "feedback give notauuid": (["feedback", "give", "notauuid", "--up", *WHO], "not a UUID"),
    "evals list --run x": (["evals", "list", "--run", "x", *WHO], "not a UUID"),
    "recommendations decide x": (["recommendations", "decide", "x", "--approve", *WHO], "not a UUID"),
    "drafts confirm good and bad ids": (["drafts", "confirm", ID, "nope", *WHO], "not a UUID"),
    "drafts watch --count 0": (["drafts", "watch", "--count", "0", *WHO], "range"),
    "maintenance expire --max-runs 0": (["maintenance", "expire", "--max-runs", "0"], "range"),
    "ask --max-tokens 3000000000": (["ask", "hi", "--max-tokens", "3000000000", *WHO], "range"),
    "a long odd id": (["drafts", "show", "\u202e" + "x" * 5000, *WHO], "not a UUID"),
    # missing or contradictory options
    "credits balance without --farm": (["credits", "balance", "--user", "a"], "--farm"),
    "credits grant without --reason": (["credits", "grant", "5", *WHO], "--reason"),
    "member remove without a user": (["member", "remove", *WHO], "MEMBER_USER"),
    "member role bad role": (["member", "role", "bob", "superhero", *WHO], "superhero"),
    "autonomy set nothing": (["autonomy", "set", *WHO], "nothing to set"),
    "autonomy set --tier bogus": (["autonomy", "set", "--tier", "bogus", *WHO], "bogus"),
    "autonomy set --type bad tier": (["autonomy", "set", "--type", "sale=all", *WHO], "TYPE=suggest"),
    "autonomy set --draft-ttl 5x": (["autonomy", "set", "--draft-ttl", "5x", *WHO], "not a duration"),
    "feedback give neither up nor down": (["feedback", "give", ID, *WHO], "--up or --down"),
    "recommendations decide no decision": (["recommendations", "decide", ID, *WHO], "--approve or --reject"),
    "drafts confirm no ids": (["drafts", "confirm", *WHO], "ID..."),
    "drafts confirm --edits for two": (["drafts", "confirm", ID, FARM, "--edits", "{}", *WHO], "one ID"),
    "drafts confirm --edits not json": (["drafts", "confirm", ID, "--edits", "{x", *WHO], "not JSON"),
    "drafts confirm --edits a list": (["drafts", "confirm", ID, "--edits", "[1]", *WHO], "JSON object"),
    "drafts list --status bogus": (["drafts", "list", "--status", "bogus", *WHO], "bogus"),
    "--format xml": (["drafts", "list", "--format", "xml", *WHO], "xml"),
    "unknown command": (["nope"], "nope"),
    "kb add missing file": (["kb", "add", "/nonexistent/file.md", *WHO], "does not exist"),
    # the prompt
    "ask without a prompt": (["ask", *WHO], "give the prompt"),
    "ask blank": (["ask", "   ", *WHO], "prompt is empty"),
    "ask text and --file": (["ask", "hi", "--file", "{tmp}/ok.json", *WHO], "not both"),
    "ask --file blank": (["ask", "--file", "{tmp}/empty.txt", *WHO], "prompt is empty"),
    "ask --file binary": (["ask", "--file", "{tmp}/binary.bin", *WHO], "not UTF-8"),
    "ask - with empty stdin": (["ask", "-", *WHO], "prompt is empty"),
    "ask --script without --fake": (["ask", "hi", "--script", "{tmp}/ok.json", *WHO], "--fake"),
    "ask --script not json": (["ask", "hi", "--fake", "--script", "{tmp}/bad.json", *WHO], "not a JSON"),
    "ask --script not a list": (["ask", "hi", "--fake", "--script", "{tmp}/notalist.json", *WHO], "list"),
    "ask --script bad turn": (["ask", "hi", "--fake", "--script", "{tmp}/badturn.json", *WHO], "turn 0"),
}  # fmt: skip


@pytest.mark.parametrize("args, says", CASES.values(), ids=CASES.keys())
def test_bad_input_exits_2_with_one_line(files, args, says):
    args = [a.replace("{tmp}", str(files)) for a in args]
    result = CliRunner().invoke(main, [*args, "--dsn", NOWHERE], input="", catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("farmops: usage: ") and says in lines[0], lines[0]
    assert len(lines[0]) < 400  # an odd 5000-character argument is cut, not echoed


def test_help_still_exits_0():
    result = CliRunner().invoke(main, ["drafts", "--help"])
    assert result.exit_code == 0 and "watch" in result.output


def test_a_group_without_its_command_shows_its_help():
    result = CliRunner().invoke(main, ["drafts"])
    assert "drafts [OPTIONS] COMMAND" in result.output and "confirm" in result.output
    assert "farmops: usage:" not in result.output
