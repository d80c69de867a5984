"""OpenTelemetry spans of ask() (the SDK's in-memory exporter), logging, and the CLI commands."""

from __future__ import annotations

import json
import logging

import pytest
from click.testing import CliRunner
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from farmops_client.cli import main
from farmops_client.testing import FakeBedrock as F

NOTE = {"title": "water", "body": "Pen 3 drinkers cleaned"}
_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def provider():
    """One SDK provider for the process (OpenTelemetry allows setting it once)."""
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    trace.set_tracer_provider(tp)
    yield tp


@pytest.fixture
def spans():
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def test_ask_is_one_span_with_a_child_per_step(client, farm, fake, spans, caplog):
    with client.tenant(farm, "alice") as t:
        t.set_autonomy(tier="auto", auto_categories=["note"])
    fake.push(F.tool_use(("create_note", NOTE)), F.text("saved", input_tokens=30, output_tokens=7))
    caplog.set_level(logging.INFO, logger="farmops_client")
    with client.tenant(farm, "alice") as t:
        result = t.ask("note that pen 3 drinkers were cleaned")
    finished = spans.get_finished_spans()
    (root,) = [s for s in finished if s.name == "farmops.ask"]
    children = [s for s in finished if s.parent is not None and s.parent.span_id == root.context.span_id]
    names = [s.name for s in sorted(children, key=lambda s: s.start_time)]
    model = "amazon.nova-lite-v1:0"
    assert names[0] == "farmops.reserve" and names[-1] == "farmops.settle"
    assert names[1].startswith("embeddings ") and names[2] == "farmops.retrieve"
    assert names[3:-1] == [f"chat {model}", "execute_tool create_note", f"chat {model}"]
    assert root.attributes["farmops.run_id"] == str(result.run_id)
    assert root.attributes["farmops.farm_id"] == str(farm)
    assert root.attributes["gen_ai.request.model"] == model
    assert root.attributes["farmops.credits.charged"] == result.credits_charged
    assert root.attributes["farmops.outcome"] == "succeeded"
    chat = [s for s in children if s.name == f"chat {model}"][-1]
    assert chat.attributes["gen_ai.operation.name"] == "chat"
    assert chat.attributes["gen_ai.usage.output_tokens"] == 7
    assert chat.attributes["gen_ai.response.finish_reasons"] == ("end_turn",)
    assert chat.attributes["aws.request_id"] == "fake-request"
    tool = next(s for s in children if s.name.startswith("execute_tool"))
    assert (
        tool.attributes["farmops.outcome"] == "written"
        and tool.attributes["gen_ai.tool.name"] == "create_note"
    )
    assert any(
        r.name == "farmops_client.assistant.steps" and "succeeded" in r.getMessage() for r in caplog.records
    )


def test_a_failed_model_call_marks_its_span(client, farm, fake, spans):
    fake.push(F.access_denied())
    with client.tenant(farm, "alice") as t, pytest.raises(Exception, match="AccessDenied"):
        t.ask("hello")
    (chat,) = [s for s in spans.get_finished_spans() if s.name.startswith("chat ")]
    assert chat.status.status_code is trace.StatusCode.ERROR


def test_cli_runs_show_tree_and_json_and_metrics(client, farm, fake, db, auditor):
    fake.push(F.tool_use(("create_note", NOTE)), F.text("ok"))
    with client.tenant(farm, "alice") as t:
        result = t.ask("note it")
    runner = CliRunner()
    env = {"FARMOPS_DATABASE_URL": db.dsn(), "FARMOPS_FARM": str(farm), "FARMOPS_USER": "alice"}
    shown = runner.invoke(main, ["runs", "show", str(result.run_id)], env=env)
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0].startswith(f"run {result.run_id} succeeded")
    assert any("input: 'note it'" in line for line in lines)
    assert any("tool create_note -> drafted" in line for line in lines)
    assert any("ledger #" in line and "reserve" in line for line in lines)
    assert len(lines) < 40 and all(len(line) <= 110 for line in lines)
    as_json = runner.invoke(main, ["runs", "show", str(result.run_id), "--json"], env=env)
    dag = json.loads(as_json.output)
    assert dag["run_id"] == str(result.run_id) and dag["edges"]
    other = runner.invoke(main, ["runs", "show", "00000000-0000-0000-0000-000000000000"], env=env)
    assert other.exit_code == 1
    mine = runner.invoke(main, ["metrics"], env=env)
    assert mine.exit_code == 0, mine.output
    names = {f.name for f in text_string_to_metric_families(mine.output)}
    assert {"farmops_runs", "farmops_credits_balance", "farmops_drafts_pending"} <= names
    every = runner.invoke(main, ["metrics"], env={"FARMOPS_DATABASE_URL": db.dsn()})
    assert every.exit_code == 0, every.output
    assert f'farm="{farm}"' in every.output
