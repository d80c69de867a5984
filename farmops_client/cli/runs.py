"""AI runs: list them, show one as its lineage tree (``--json``: the DAG of ``farmops.run_lineage``)."""

from __future__ import annotations

import json
from typing import Any

import click

from .base import FarmopsGroup, as_member, emit, json_option, jsonable, main, member_options

RUN_COLUMNS = [
    "id",
    "user_id",
    "feature",
    "model",
    "status",
    "credits_reserved",
    "credits_actual",
    "reserved_at",
]
#: Width of one line of the tree (a person reads it in one screen).
WIDTH = 110


@main.group(cls=FarmopsGroup)
def runs() -> None:
    """AI runs: list them, show one as its lineage tree."""


@runs.command("list")
@click.option("--limit", type=int, default=50, show_default=True)
@json_option
@member_options
def runs_list(limit, as_json, farm_id, user_id, dsn, data_dir) -> None:
    """The farm's most recent runs."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        rows = t.runs(limit=limit)
    emit(rows, as_json, RUN_COLUMNS, title="AI runs")


@runs.command("show")
@click.argument("run_id")
@json_option
@member_options
def runs_show(run_id, as_json, farm_id, user_id, dsn, data_dir) -> None:
    """One run's lineage: input, guard checks, retrievals, model and tool calls, drafts, records, ledger
    legs, evals, feedback (exit 1 if not visible). ``--json`` prints the DAG."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        lineage = t.lineage(run_id)
    if as_json:
        click.echo(json.dumps(jsonable(lineage), indent=2, ensure_ascii=False))
        return
    click.echo("\n".join(render_tree(lineage)))


def _short(value: Any, width: int = 60) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def describe(node: dict[str, Any]) -> str:
    """One line for one node of the lineage."""
    kind = node["kind"]
    if kind == "run":
        credits = f"{node.get('credits_actual')}/{node.get('credits_reserved')} credits"
        what = f"{node['status']} {node['feature']} {node['model']}"
        return f"run {node['run_id']} {what} user {node['user_id']} {credits}"
    if kind == "input":
        return f"input: {_short(node.get('input_summary', ''))!r}"
    if kind == "guard":
        detail = node.get("detail", {})
        cats = ",".join(detail.get("categories", [])) or "-"
        return f"guard {detail.get('stage', '?')}: {node.get('guardrail')} [{cats}]"
    if kind == "retrieval":
        where = node.get("document") or node.get("source_type")
        withheld = " WITHHELD" if node.get("withheld") else ""
        score = f"score {node['score']:.3f}"
        return f"retrieval #{node['rank']} {where} chunk {node['chunk_index']} {score}{withheld}"
    if kind == "model_call":
        tokens = f"{node.get('input_tokens', 0)}+{node.get('output_tokens', 0)} tok"
        said = _short(node.get("output_summary", ""), 40)
        how = f"{node.get('stop_reason')} {tokens} {node.get('latency_ms')} ms"
        return f"model call turn {node.get('turn')} {how} {said!r}"
    if kind == "tool_call":
        reason = f" ({_short(node['reason'], 40)})" if node.get("reason") else ""
        given = _short(json.dumps(node.get("input")), 40)
        return f"tool {node.get('tool')} -> {node.get('outcome')}{reason} {given}"
    if kind == "draft":
        return f"draft {node['draft_id']} {node['record_type']} {node['status']}" + (
            f" by {node['decided_by']}" if node.get("decided_by") else ""
        )
    if kind == "record":
        return f"record {node['record_id']} ({node['record_type']})"
    if kind == "ledger":
        return f"ledger #{node['seq']} {node['leg']} {node['delta']:+d} -> {node['balance_after']}"
    if kind == "eval":
        return f"eval {node['rule']}: {'pass' if node['passed'] else 'FAIL'} ({node['severity']})"
    if kind == "feedback":
        thumbs = "+1" if node["thumbs_up"] else "-1"
        return f"feedback {node['user_id']}: {thumbs} {_short(node.get('comment') or '', 40)}"
    return f"{kind} {node['id']}"


def render_tree(lineage: dict[str, Any]) -> list[str]:
    """The DAG as an indented tree: each node under its first parent (others noted), in time order."""
    nodes = lineage.get("nodes") or []
    children: dict[str, list[dict[str, Any]]] = {}
    roots = []
    for node in nodes:
        parents = node.get("parents") or []
        if parents:
            children.setdefault(parents[0], []).append(node)
        else:
            roots.append(node)
    lines: list[str] = []

    def walk(node: dict[str, Any], prefix: str, last: bool, top: bool) -> None:
        branch = "" if top else ("└─ " if last else "├─ ")
        extra = node.get("parents", [])[1:]
        also = f"  (also after {', '.join(extra[:3])}{'…' if len(extra) > 3 else ''})" if extra else ""
        lines.append(_short(prefix + branch + describe(node) + also, WIDTH))
        kids = children.get(node["id"], [])
        for i, kid in enumerate(kids):
            walk(kid, prefix + ("" if top else ("   " if last else "│  ")), i == len(kids) - 1, False)

    for root in roots:
        walk(root, "", True, True)
    return lines
