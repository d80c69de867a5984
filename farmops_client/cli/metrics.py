"""Metrics: ``farmops.metrics()`` in the Prometheus text format, printed or served."""

from __future__ import annotations

import contextlib
import time

import click

from .. import observability
from .base import AUDITOR_ROLE, FarmopsGroup, main, member_options, need_member, open_client


@contextlib.contextmanager
def _metrics_connection(farm_id, user_id, dsn, data_dir):
    """As one member (--farm/--user: that farm), else as farmops_auditor (every farm)."""
    if farm_id or user_id:
        farm_id, user_id = need_member(farm_id, user_id)
        with open_client(dsn, data_dir) as client, client.tenant(farm_id, user_id) as t:
            yield t.begin()
    else:
        with open_client(dsn, data_dir, role=AUDITOR_ROLE) as client, client.connection() as conn:
            yield conn


@main.group(cls=FarmopsGroup, invoke_without_command=True)
@member_options
@click.pass_context
def metrics(ctx, farm_id, user_id, dsn, data_dir) -> None:
    """Print every farm's metrics in the Prometheus text format (as farmops_auditor: the DSN's role must be
    able to SET ROLE farmops_auditor), or one farm's with --farm/--user."""
    ctx.obj = (farm_id, user_id, dsn, data_dir)
    if ctx.invoked_subcommand is None:
        with _metrics_connection(farm_id, user_id, dsn, data_dir) as conn:
            click.echo(observability.prometheus_text(conn), nl=False)


@metrics.command("serve")
@click.option("--port", type=int, default=9187, show_default=True, help="TCP port of /metrics.")
@click.option("--addr", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.pass_obj
def metrics_serve(obj, port, addr) -> None:
    """Serve /metrics (each scrape reads farmops.metrics() once) until interrupted."""
    farm_id, user_id, dsn, data_dir = obj

    def fetch():
        with _metrics_connection(farm_id, user_id, dsn, data_dir) as conn:
            return observability.metrics(conn), observability.metric_help(conn)

    server, _thread = observability.serve(port, fetch, addr=addr)
    click.echo(f"serving farmops metrics on http://{addr}:{port}/metrics", err=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.shutdown()
