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


def prometheus_text(conn: psycopg.Connection) -> str:
    """The metrics the connection's role may see, in the Prometheus text exposition format."""
    return generate_latest(registry_for(lambda: (metrics(conn), metric_help(conn)))).decode()


def serve(port: int, fetch, addr: str = "0.0.0.0"):
    """Serve ``/metrics`` on ``port`` (a thread; returns ``(server, thread)``); each scrape runs ``fetch``."""
    logger.info("serving farmops metrics on %s:%s", addr, port)
    return start_http_server(port, addr=addr, registry=registry_for(fetch))
