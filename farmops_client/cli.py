"""The ``farmops`` command line, for operators, DBAs and CI.

Exit codes: 0 success; 1 the database refused the operation (a documented SQLSTATE or
a migration problem); 2 bad usage; 3 the database could not be reached.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
import psycopg

from . import embedded
from . import migrate as migrations
from .errors import DatabaseUnavailable, FarmopsError, translate

EXIT_REFUSED = 1
EXIT_UNAVAILABLE = 3


class FarmopsGroup(click.Group):
    """A click group that turns farmops and database errors into one line and an exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except psycopg.Error as exc:
            _fail(translate(exc))
        except FarmopsError as exc:
            _fail(exc)


def _fail(exc: BaseException) -> None:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    code = getattr(exc, "sqlstate", None)
    suffix = f" [{code}]" if code else ""
    click.echo(f"farmops: {type(exc).__name__}: {message}{suffix}", err=True)
    sys.exit(EXIT_UNAVAILABLE if isinstance(exc, DatabaseUnavailable) else EXIT_REFUSED)


dsn_option = click.option(
    "--dsn",
    envvar="FARMOPS_DATABASE_URL",
    help="PostgreSQL connection string (env FARMOPS_DATABASE_URL). Default: the embedded server.",
)
data_dir_option = click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="FARMOPS_DATA_DIR",
    help="Data directory of the embedded server (env FARMOPS_DATA_DIR).",
)


def resolve_dsn(dsn: str | None, data_dir: Path | None = None) -> str:
    """The DSN to use: the one given, else the embedded server's (started if needed)."""
    return dsn if dsn else embedded.start(data_dir)


def connect(dsn: str) -> psycopg.Connection:
    """Open a connection, turning any failure into a one-line :class:`DatabaseUnavailable`."""
    try:
        return psycopg.connect(dsn, connect_timeout=int(os.environ.get("FARMOPS_CONNECT_TIMEOUT", "10")))
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DatabaseUnavailable(f"cannot connect to the database: {first}") from exc


@click.group(cls=FarmopsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="farmops")
def main() -> None:
    """farmops: AI governance as a database primitive.

    Every AI action of a multi-tenant product is metered, scoped to one tenant,
    human-approved where it must be, and auditable, enforced by PostgreSQL itself.
    Commands that need a database take --dsn / FARMOPS_DATABASE_URL and otherwise use
    the embedded PostgreSQL + pgvector server that `farmops db start` runs.
    """


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
    "--status", "show_status", is_flag=True, help="List applied and pending migrations; change nothing."
)
@click.option("--dry-run", is_flag=True, help="Apply everything in a transaction, then roll it back.")
def migrate_cmd(dsn: str | None, data_dir: Path | None, show_status: bool, dry_run: bool) -> None:
    """Apply the farmops SQL package: pending schema migrations, then functions and policies.

    One transaction under an advisory lock: concurrent migrators wait for each other and
    nothing is applied twice. An applied migration whose file changed is refused.
    """
    with connect(resolve_dsn(dsn, data_dir)) as conn:
        if show_status:
            for row in migrations.status(conn):
                when = f"  {row.applied_at:%Y-%m-%d %H:%M:%S%z}" if row.applied_at else ""
                click.echo(f"{row.state:8} {row.filename}{when}")
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


@main.command("install-script")
@click.option("--check", is_flag=True, help="Exit 1 if sql/install.sql is not up to date.")
def install_script(check: bool) -> None:
    """Regenerate sql/install.sql (the psql-only installer) from the SQL tree."""
    from .paths import sql_dir

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
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def errors_cmd(as_json: bool) -> None:
    """List the documented SQLSTATEs and the Python exception each maps to."""
    from .errors import BY_SQLSTATE

    rows = [
        {"sqlstate": k, "exception": v.__name__, "meaning": (v.__doc__ or "").split(": ", 1)[-1]}
        for k, v in sorted(BY_SQLSTATE.items())
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        click.echo(f"{r['sqlstate']}  {r['exception']:22} {r['meaning']}")


if __name__ == "__main__":  # pragma: no cover
    main()
