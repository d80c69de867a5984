"""The root ``farmops`` group and what every command shares: options, the client, output."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

import click
import psycopg

from .. import db as fdb
from .. import embedded
from ..aws import AwsIdentities, has_aws_credentials
from ..client import Client, connect
from ..embeddings import EMBEDDER_NAMES, Embedder, embedder_named
from ..errors import DatabaseUnavailable, FarmopsError

EXIT_REFUSED = 1
EXIT_UNAVAILABLE = 3


class FarmopsGroup(click.Group):
    """A click group that turns farmops and database errors into one line and an exit code."""

    def invoke(self, ctx: click.Context):
        try:
            with fdb.translated():
                return super().invoke(ctx)
        except (FarmopsError, psycopg.Error) as exc:
            fail(exc)


def fail(exc: BaseException) -> None:
    """Print ``exc`` as one line (with its SQLSTATE) and exit 3 if the database is unreachable, else 1."""
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


@click.group(cls=FarmopsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="farmops")
def main() -> None:
    """farmops: AI governance as a database primitive.

    Every AI action of a multi-tenant product is metered, scoped to one tenant,
    human-approved where it must be, and auditable, enforced by PostgreSQL itself.
    Commands that need a database take --dsn / FARMOPS_DATABASE_URL and otherwise use
    the embedded PostgreSQL + pgvector server that `farmops db start` runs.
    """


# ---------------------------------------------------------------------------------------------------------
# The library's commands. The CLI acts as ONE member of ONE farm (--farm/--user), connecting with
# `SET ROLE farmops_app` so that row level security applies even with a superuser DSN. Operator-wide
# commands (farm list, check without --farm) act as farmops_owner and need a DSN whose role may.
# ---------------------------------------------------------------------------------------------------------
APP_ROLE = fdb.APP_ROLE
OWNER_ROLE = fdb.OWNER_ROLE

farm_option = click.option("--farm", "farm_id", envvar="FARMOPS_FARM", help="Farm id (env FARMOPS_FARM).")
user_option = click.option(
    "--user", "user_id", envvar="FARMOPS_USER", help="Acting member (env FARMOPS_USER)."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
embedder_option = click.option(
    "--embedder",
    type=click.Choice(EMBEDDER_NAMES),
    envvar="FARMOPS_EMBEDDER",
    default="lexical",
    show_default=True,
    help="lexical = offline feature hashing (word overlap, not meaning); titan = Bedrock Titan V2. "
    "Use the same one for kb add and search (env FARMOPS_EMBEDDER).",
)


def open_client(dsn, data_dir, *, role: str | None = APP_ROLE, bedrock=None, embedder=None) -> Client:
    """A small-pool client for one command, acting as ``role`` (farmops_app unless told otherwise)."""
    return connect(
        resolve_dsn(dsn, data_dir),
        role=role,
        bedrock=bedrock,
        embedder=embedder,
        min_size=1,
        max_size=2,
        connect_timeout=int(os.environ.get("FARMOPS_CONNECT_TIMEOUT", "10")),
    )


def need_member(farm_id: str | None, user_id: str | None) -> tuple[str, str]:
    """``(farm_id, user_id)``, or a usage error (exit 2) when either is missing."""
    if not farm_id or not user_id:
        raise click.UsageError(
            "this command acts as a farm member: give --farm and --user (or FARMOPS_FARM/USER)"
        )
    return farm_id, user_id


def member_options(command):
    """The options of every command that acts as a farm member: --farm, --user, --dsn, --data-dir."""
    for option in (data_dir_option, dsn_option, user_option, farm_option):
        command = option(command)
    return command


@contextlib.contextmanager
def as_member(farm_id: str | None, user_id: str | None, dsn: str | None, data_dir: Path | None):
    """One tenant session (one transaction) as ``user_id`` in ``farm_id``."""
    farm_id, user_id = need_member(farm_id, user_id)
    with open_client(dsn, data_dir) as client, client.tenant(farm_id, user_id) as t:
        yield t


def bedrock_from_env():
    """A Bedrock runtime client from the environment's AWS credentials, or a FarmopsError."""
    ids = AwsIdentities.from_env()
    if not has_aws_credentials(ids.bedrock):
        raise FarmopsError("no AWS credentials for Bedrock (configure them, or try `farmops demo`)")
    return ids.bedrock_client()


def embedder_for(name: str, bedrock=None) -> Embedder:
    """The --embedder choice; titan without a Bedrock client yet uses the environment's credentials."""
    if name == "titan" and bedrock is None:
        bedrock = bedrock_from_env()
    return embedder_named(name, bedrock)


def jsonable(value):
    """``value`` with everything JSON cannot hold (UUIDs, timestamps, decimals) as strings."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def cell(value) -> str:
    """One table cell: JSON for structures, long text cut at 60 characters."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(jsonable(value), ensure_ascii=False)
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def emit(rows: list[dict], as_json: bool, columns: list[str] | None = None, title: str | None = None) -> None:
    """Print rows as JSON or as a rich table of ``columns`` (default: every key of the first row)."""
    if as_json:
        click.echo(json.dumps(jsonable(rows), indent=2, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    columns = columns or (list(rows[0].keys()) if rows else [])
    table = Table(title=title, show_lines=False)
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*(cell(row.get(c)) for c in columns))
    Console().print(table)
    if not rows:
        click.echo("(no rows)")


def emit_one(row: dict, as_json: bool) -> None:
    """Print one record as JSON or as key/value lines."""
    if as_json:
        click.echo(json.dumps(jsonable(row), indent=2, ensure_ascii=False))
        return
    for key, value in row.items():
        click.echo(f"{key:18} {cell(value)}")
