"""Observability: what an operator, an auditor or on-call reads, decided by the database.

- ``farmops.check_tenancy()`` reads only the catalog (no tenant rows), so it runs on any connection,
  with or without a tenant context, as the application or as the package owner.
- ``farmops.run_lineage(run_id)``: one run as a DAG (input, guard checks, retrievals, model calls,
  tool calls, drafts, records, ledger legs, evals, feedback), under row level security.
- ``farmops.metrics()``: ``(name, labels, value)`` rows, per farm under row level security (a
  member's farm in a tenant context, every farm for ``farmops_auditor``); :class:`MetricsCollector`
  exposes them to Prometheus through ``prometheus_client`` (:func:`prometheus_text`, :func:`serve`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from uuid import UUID

import psycopg
from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, UnknownMetricFamily
from prometheus_client.registry import Collector

from . import db

logger = logging.getLogger(__name__)


def check_tenancy(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """``farmops.check_tenancy()``: ``{"object_type", "object_name", "problem", "detail"}`` per problem of
    the tenant boundary (RLS, keys, indexes, views, functions, the application role); empty = healthy."""
    return db.call(conn, "check_tenancy")


def run_lineage(conn: psycopg.Connection, run_id: UUID | str) -> dict[str, Any]:
    """``farmops.run_lineage``: ``{"run_id", "farm_id", "nodes", "edges"}``; RunNotFound if not visible."""
    return db.value(conn, "run_lineage", run_id=run_id)


def metrics(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """``farmops.metrics()``: ``{"name", "labels", "value"}`` rows the connection's role may see."""
    return db.call(conn, "metrics")


def metric_help(conn: psycopg.Connection) -> dict[str, dict[str, str]]:
    """``farmops.metric_help()``: ``{name: {"kind": "counter"|"gauge", "help": ...}}``."""
    return {r["name"]: {"kind": r["kind"], "help": r["help"]} for r in db.call(conn, "metric_help")}


def families(rows: Iterable[dict[str, Any]], help_: dict[str, dict[str, str]]) -> list[Metric]:
    """The rows as Prometheus metric families (counters, gauges; unknown names untyped)."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row["name"], []).append(row)
    out: list[Metric] = []
    for name in sorted(grouped):
        samples = grouped[name]
        keys = sorted({key for s in samples for key in (s["labels"] or {})})
        meta = help_.get(name, {"kind": "untyped", "help": f"farmops metric {name}"})
        if meta["kind"] == "counter":
            family: Metric = CounterMetricFamily(name, meta["help"], labels=keys)
        elif meta["kind"] == "gauge":
            family = GaugeMetricFamily(name, meta["help"], labels=keys)
        else:
            family = UnknownMetricFamily(name, meta["help"], labels=keys)
        for s in samples:
            labels = s["labels"] or {}
            family.add_metric([str(labels.get(k, "")) for k in keys], float(s["value"]))
        out.append(family)
    return out


class MetricsCollector(Collector):
    """A custom ``prometheus_client`` collector: each scrape calls ``fetch()`` for rows and help."""

    def __init__(self, fetch: Callable[[], tuple[list[dict[str, Any]], dict[str, dict[str, str]]]]):
        self.fetch = fetch

    def collect(self) -> Iterator[Metric]:
        """The families of one scrape (one database round trip per function)."""
        rows, help_ = self.fetch()
        yield from families(rows, help_)


def registry_for(fetch) -> CollectorRegistry:
    """A registry holding only farmops' collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MetricsCollector(fetch))
    return registry


def fetcher(
    connect: Callable[[], Any],
) -> Callable[[], tuple[list[dict[str, Any]], dict[str, dict[str, str]]]]:
    """A fetch function reading metrics and help over a connection from ``connect()`` (a context manager)."""

    def fetch():
        with connect() as conn:
            return metrics(conn), metric_help(conn)

    return fetch


def exposition(rows: list[dict[str, Any]], help_rows: list[dict[str, Any]]) -> str:
    """``farmops.metrics()`` and ``farmops.metric_help()`` rows in the Prometheus text format."""
    help_ = {r["name"]: {"kind": r["kind"], "help": r["help"]} for r in help_rows}
    return generate_latest(registry_for(lambda: (rows, help_))).decode()


def prometheus_text(conn: psycopg.Connection) -> str:
    """The metrics the connection's role may see, in the Prometheus text exposition format."""
    return generate_latest(registry_for(lambda: (metrics(conn), metric_help(conn)))).decode()


def serve(port: int, fetch, addr: str = "0.0.0.0"):
    """Serve ``/metrics`` on ``port`` (a thread; returns ``(server, thread)``); each scrape runs ``fetch``."""
    logger.info("serving farmops metrics on %s:%s", addr, port)
    return start_http_server(port, addr=addr, registry=registry_for(fetch))


#: Width of one line of the lineage tree (a person reads it in one screen).
TREE_WIDTH = 110


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
    if kind == "guard":  # a guard step the client recorded, or a guard event the database recorded
        detail = node.get("detail") or node
        cats = ",".join(detail.get("categories") or []) or "-"
        return f"guard {detail.get('stage', '?')}: {node.get('guardrail') or node.get('verdict')} [{cats}]"
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
    if kind == "audit":
        return f"audit #{node['seq']} {node['action']} {node['hash'][:16]}.."
    return f"{kind} {node['id']}"


def lineage_tree(lineage: dict[str, Any]) -> list[str]:
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
        lines.append(_short(prefix + branch + describe(node) + also, TREE_WIDTH))
        kids = children.get(node["id"], [])
        for i, kid in enumerate(kids):
            walk(kid, prefix + ("" if top else ("   " if last else "│  ")), i == len(kids) - 1, False)

    for root in roots:
        walk(root, "", True, True)
    return lines
