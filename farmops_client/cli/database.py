"""Commands that set a database up: the embedded server, migrations, the install script, the error table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .. import db as fdb
from .. import embedded
from .. import migrate as migrations
from ..errors import BY_SQLSTATE
from ..paths import sql_dir
from .base import (
    EXIT_REFUSED,
    FarmopsGroup,
    data_dir_option,
    dsn_option,
    emit,
    json_option,
    main,
    output_format,
    resolve_dsn,
)


@main.group(cls=FarmopsGroup)
def db() -> None:
    """Run the embedded PostgreSQL + pgvector server (the default database)."""


@db.command("start")
@data_dir_option
def db_start(data_dir: Path | None) -> None:
    """Start the embedded server if it is not running and print its DSN (idempotent)."""
    click.echo(embedded.start(data_dir))


@db.command("stop")
@data_dir_option
def db_stop(data_dir: Path | None) -> None:
    """Stop the embedded server."""
    stopped = embedded.stop(data_dir)
    click.echo("stopped" if stopped else "not running")


@db.command("status")
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def db_status(data_dir: Path | None, as_json: bool) -> None:
    """Say whether the embedded server runs, where its data lives and its DSN. Exit 1 if stopped."""
    st = embedded.status(data_dir)
    if as_json:
        click.echo(
            json.dumps({"running": st.running, "pid": st.pid, "dsn": st.dsn, "data_dir": str(st.data_dir)})
        )
    else:
        click.echo(
            f"{'running' if st.running else 'stopped'}  data_dir={st.data_dir}"
            + (f"  pid={st.pid}  dsn={st.dsn}" if st.running else "")
        )
    if not st.running:
        sys.exit(EXIT_REFUSED)


@db.command("url")
@data_dir_option
def db_url(data_dir: Path | None) -> None:
    """Print the DSN of the running embedded server (exit 1 if it is not running)."""
    st = embedded.status(data_dir)
    if not st.running:
        click.echo("farmops: the embedded server is not running (farmops db start)", err=True)
        sys.exit(EXIT_REFUSED)
    click.echo(st.dsn)


@main.command("migrate")
@dsn_option
@data_dir_option
@click.option(
    "--status",
    "show_status",
    is_flag=True,
    help="List applied and pending migrations and the installed version; change nothing."
    " Exit 1 unless up to date.",
)
@click.option("--dry-run", is_flag=True, help="Apply everything in a transaction, then roll it back.")
def migrate_cmd(dsn: str | None, data_dir: Path | None, show_status: bool, dry_run: bool) -> None:
    """Apply the farmops SQL package: pending schema migrations, then functions and policies.

    One transaction under an advisory lock: concurrent migrators wait for each other and
    nothing is applied twice. An applied migration whose file changed is refused.
    With --status, exit 1 while anything is pending, changed, to upgrade or unknown, or the database
    records another package version (so CI can gate on it); 0 when up to date.
    """
    with fdb.connect(resolve_dsn(dsn, data_dir)) as conn:
        if show_status:
            states = migrations.status(conn)
            installed = migrations.installed_version(conn)
            for row in states:
                when = f"  {row.applied_at:%Y-%m-%d %H:%M:%S%z}" if row.applied_at else ""
                click.echo(f"{row.state:8} {row.filename}{when}")
            package = migrations.package_version()
            click.echo(f"version  installed {installed or 'none'}, package {package}")
            if not migrations.up_to_date(states, installed):
                sys.exit(EXIT_REFUSED)
            return
        report = migrations.migrate(conn, dry_run=dry_run)
    verb = "would apply" if dry_run else "applied"
    click.echo(
        f"{verb} {len(report.applied)} migration(s){': ' if report.applied else ''}"
        + ", ".join(report.applied)
    )
    click.echo(
        f"re-applied {len(report.reapplied)} function/policy file(s)" + (" (rolled back)" if dry_run else "")
    )
    if report.upgraded:
        click.echo(f"accepted older checksum(s) of: {', '.join(report.upgraded)}")
    click.echo(f"package version {report.version}")


@main.command("install-script")
@click.option("--check", is_flag=True, help="Exit 1 if sql/install.sql is not up to date.")
def install_script(check: bool) -> None:
    """Regenerate sql/install.sql (the psql-only installer) from the SQL tree."""
    target = sql_dir() / "install.sql"
    text = migrations.render_install_script()
    if check:
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            click.echo("farmops: sql/install.sql is stale: run `farmops install-script`", err=True)
            sys.exit(EXIT_REFUSED)
        click.echo("sql/install.sql is up to date")
        return
    target.write_text(text, encoding="utf-8")
    click.echo(f"wrote {target}")


@main.command("errors")
@json_option
def errors_cmd(as_json: bool) -> None:
    """List the documented SQLSTATEs and the Python exception each maps to."""
    rows = [
        {"sqlstate": k, "exception": v.__name__, "meaning": (v.__doc__ or "").split(": ", 1)[-1]}
        for k, v in sorted(BY_SQLSTATE.items())
    ]
    if output_format(as_json) != "table":
        emit(rows, as_json, ["sqlstate", "exception", "meaning"])
        return
    for r in rows:
        click.echo(f"{r['sqlstate']}  {r['exception']:22} {r['meaning']}")
