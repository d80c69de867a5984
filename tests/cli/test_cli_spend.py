"""farmops budget|usage|rates and credits adjust|statement through the CLI, against the real database; and
the client's metering of embeddings (Titan through FakeBedrock) as the application role."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner
from support import APP_LOGIN

import farmops_client
from farmops_client.cli import main
from farmops_client.embeddings import TitanEmbedder
from farmops_client.testing import FakeBedrock, fake_bedrock_client


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


def test_budget_usage_rates_and_statement(cli):
    farm = cli("farm", "create", "Kaduna Poultry", "--owner", "alice").output.strip()
    who = ["--farm", farm, "--user", "alice"]
    cli("credits", "grant", "100", "--reason", "test", *who)
    made = json.loads(cli("budget", "set", "month", "$40", "--thresholds", "50,100", "--json", *who).output)
    assert (made["limit_micro_usd"], made["thresholds"]) == (40_000_000, [50, 100])
    shown = json.loads(cli("budget", "show", "--json", *who).output)
    assert shown["budgets"][0]["limit_micro_usd"] == 40_000_000
    assert shown["month_to_date"]["budget_micro_usd"] == 40_000_000
    assert "month to date: $0.00, projected: $0.00 (budget $40.00)" in cli("budget", "show", *who).output
    cli("ask", "When is gumboro due?", "--fake", *who)
    rows = json.loads(cli("usage", "--by", "model", "--format", "json", *who).output)
    assert [r["model"] for r in rows] == ["amazon.nova-lite-v1:0"] and rows[0]["cost_micro_usd"] > 0
    table = list(csv.DictReader(io.StringIO(cli("usage", "--since", "2w", "--by", "member", "--format", "csv",
                                                *who).output)))  # fmt: skip
    assert table[0]["member"] == "alice" and int(table[0]["calls"]) == 1
    assert cli("usage", "--since", "soon", *who, ok=False).exit_code == 2
    # Only owners set budgets: a worker is refused with the SQLSTATE (exit 1).
    cli("member", "add", "wes", "worker", *who)
    refused = cli("budget", "set", "day", "1", "--farm", farm, "--user", "wes", ok=False)
    assert refused.exit_code == 1 and refused.output.strip().endswith("[OF003]")
    assert cli("budget", "drop", "month", *who).output.strip() == "dropped the month budget"
    assert cli("budget", "drop", "month", *who, ok=False).output.strip().endswith("[OF415]")
    # Credits for finance.
    assert cli("credits", "adjust", "-10", "--reason", "duplicate grant", *who).output.strip() != ""
    statement = json.loads(cli("credits", "statement", "--from", "2020-01-01", "--json", *who).output)
    assert statement["grants"] == 100 and statement["adjustments"] == -10 and statement["reconciles"] is True
    assert (
        cli("credits", "adjust", "-100000", "--reason", "x", *who, ok=False)
        .output.strip()
        .endswith("[OF414]")
    )


def test_rates_list_and_set(cli):
    listed = {r["model"]: r for r in json.loads(cli("rates", "list", "--json").output)}
    assert listed["amazon.nova-lite-v1:0"]["output_micro_usd_per_1k"] == 240
    assert "$0.24" in cli("rates", "list").output  # Nova Lite output per 1M tokens
    set_ = json.loads(cli("rates", "set", "my-model", "--input", "3", "--output", "15", "--source", "test",
                          "--json").output)  # fmt: skip
    assert (set_["input_micro_usd_per_1k"], set_["output_micro_usd_per_1k"]) == (3000, 15000)
    assert cli("rates", "set", "my-model", ok=False).exit_code == 2
    assert cli("rates", "set", "my-model", "--input", "0.0000001", "--output", "1", ok=False).exit_code == 2


def test_titan_embeddings_are_metered(db, app, farm):
    fake = FakeBedrock(default=FakeBedrock.text("ok"))
    bedrock = fake_bedrock_client(fake, max_attempts=1)
    with farmops_client.connect(
        db.dsn(APP_LOGIN), bedrock=bedrock, embedder=TitanEmbedder(bedrock)
    ) as client:
        with client.tenant(farm, "alice") as t:
            t.grant_credits(1000, "test")
            t.ingest_document("Vaccines", "Gumboro vaccine is given on day 14.\n\nNewcastle on day 21.")
        with client.tenant(farm, "alice") as t:
            t.search("gumboro")
        result = None
        with client.tenant(farm, "alice") as t:
            result = t.ask("When is gumboro due?")
            rows = t.execute(
                "SELECT feature, model, input_tokens, cost_micro_usd, ai_run_id FROM farmops.model_usage"
                " ORDER BY recorded_at"
            ).fetchall()
            run = t.run(result.run_id)
    # ingest and search as their own features; the ask's prompt embedding as a leg of its run.
    assert [(r["feature"], r["ai_run_id"]) for r in rows] == [
        ("ingest", None),
        ("search", None),
        ("assistant", result.run_id),
    ]
    assert all(r["model"] == "amazon.titan-embed-text-v2:0" and r["input_tokens"] > 0 for r in rows)
    assert run["cost_micro_usd"] is not None and run["model"] == "amazon.nova-lite-v1:0"
