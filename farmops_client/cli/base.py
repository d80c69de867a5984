"""The root ``farmops`` group and what every command shares: options, the client, output."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import os
import sys
import uuid
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


EXIT_USAGE = 2


class FarmopsGroup(click.Group):
    """A click group that turns farmops and database errors into one line and an exit code, and bad
    usage (a missing option, a malformed id or number) into ONE line and exit 2."""

    def invoke(self, ctx: click.Context):
        try:
            with fdb.translated():
                return super().invoke(ctx)
        except (FarmopsError, psycopg.Error) as exc:
            fail(exc)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """click's ``main``, but a usage error is one line on stderr (no usage block) and exit 2."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Abort:
            click.echo("farmops: aborted", err=True)
            sys.exit(EXIT_REFUSED)
        except click.exceptions.NoArgsIsHelpError as exc:  # a group without its command: its help
            exc.show()
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            usage(exc.format_message(), exc.exit_code)
        sys.exit(rv if isinstance(rv, int) else 0)


def usage(message: str, code: int = EXIT_USAGE) -> None:
    """Print a usage error as one line (``farmops: usage: ...``) and exit ``code`` (2)."""
    line = " ".join(message.split())
    click.echo(f"farmops: usage: {line}", err=True)
    sys.exit(code)


def _diagnostics(exc: BaseException) -> tuple[str | None, str | None]:
    """The DETAIL and HINT PostgreSQL sent with ``exc`` (or with the psycopg error it wraps)."""
    for err in (exc, exc.__cause__):
        diag = getattr(err, "diag", None)
        if diag is not None:
            return diag.message_detail, diag.message_hint
    return None, None


def fail(exc: BaseException) -> None:
    """Print ``exc`` as one line (with its SQLSTATE), then the database's DETAIL and HINT if any, and
    exit 3 if the database is unreachable, else 1."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    code = getattr(exc, "sqlstate", None)
    suffix = f" [{code}]" if code else ""
    click.echo(f"farmops: {type(exc).__name__}: {message}{suffix}", err=True)
    detail, hint = _diagnostics(exc)
    if detail and detail not in message:
        click.echo(f"  detail: {' '.join(detail.split())}", err=True)
    if hint:
        click.echo(f"  hint: {' '.join(hint.split())}", err=True)
    sys.exit(EXIT_UNAVAILABLE if isinstance(exc, DatabaseUnavailable) else EXIT_REFUSED)


class UuidType(click.ParamType):
    """An id: a UUID, checked before anything connects (a bad one is a usage error, exit 2)."""

    name = "uuid"

    def convert(self, value, param, ctx):
        """The value as a canonical UUID string."""
        if isinstance(value, uuid.UUID):
            return str(value)
        try:
            return str(uuid.UUID(str(value).strip()))
        except ValueError:
            shown = str(value) if len(str(value)) <= 40 else str(value)[:37] + "..."
            self.fail(f"{shown!r} is not a UUID", param, ctx)


UUID = UuidType()
#: A PostgreSQL integer (what the SQL API takes): anything outside is a usage error, not 42883.
INT4_MAX = 2**31 - 1
INT32 = click.IntRange(-(2**31), INT4_MAX)
POSITIVE_INT32 = click.IntRange(1, INT4_MAX)


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
AUDITOR_ROLE = fdb.AUDITOR_ROLE

farm_option = click.option(
    "--farm", "farm_id", type=UUID, envvar="FARMOPS_FARM", help="Farm id (env FARMOPS_FARM)."
)
user_option = click.option(
    "--user", "user_id", envvar="FARMOPS_USER", help="Acting member (env FARMOPS_USER)."
)
#: ``ctx.meta`` key of the chosen output format (``table``, ``json`` or ``csv``).
FORMAT_KEY = "farmops.format"
FORMATS = ("table", "json", "csv")


def _remember_format(ctx: click.Context, param, value):
    if value is not None:
        ctx.meta[FORMAT_KEY] = value
    return value


def _json_flag(ctx: click.Context, param, value):
    if value:
        ctx.meta[FORMAT_KEY] = "json"
    return value or ctx.meta.get(FORMAT_KEY) == "json"


def json_option(command):
    """``--format table|json|csv`` (env FARMOPS_FORMAT) and its alias ``--json``, as ONE parameter
    ``as_json`` (True for JSON); :func:`emit` and :func:`emit_one` read the format itself."""
    command = click.option(
        "--json", "as_json", is_flag=True, callback=_json_flag, help="Alias of --format json."
    )(command)
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(FORMATS),
        envvar="FARMOPS_FORMAT",
        is_eager=True,
        expose_value=False,
        callback=_remember_format,
        help="Output: table (default), json or csv; machine formats carry ISO 8601 timestamps.",
    )(command)


def output_format(as_json: bool = False) -> str:
    """The format the current command prints: ``json`` when ``as_json``, else ``--format``'s."""
    if as_json:
        return "json"
    ctx = click.get_current_context(silent=True)
    return (ctx.meta.get(FORMAT_KEY) if ctx else None) or "table"


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


@contextlib.contextmanager
def owner_transaction(dsn: str | None, data_dir: Path | None):
    """One transaction as farmops_owner (``SET LOCAL ROLE``) on a connection of its own."""
    with fdb.connect(resolve_dsn(dsn, data_dir), autocommit=True) as conn:
        fdb.ensure_vector(conn)
        with fdb.local_role(conn, OWNER_ROLE):
            yield conn


@contextlib.contextmanager
def progress_bar(total: int | None, description: str):
    """A progress bar on stderr for long work; yields ``advance(n=1)``. Shown on a terminal (or with
    ``FARMOPS_PROGRESS=1``) and for more than one step only, so that pipes and scripts stay clean."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    forced = os.environ.get("FARMOPS_PROGRESS") == "1"
    console = Console(stderr=True, force_terminal=True if forced else None)
    if not console.is_terminal or (total is not None and total <= 1):
        yield lambda n=1: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=not forced) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n=1: progress.advance(task, n)


class ProgressEmbedder:
    """An embedder that embeds in batches and shows a progress bar (ingesting a large file)."""

    def __init__(self, inner: Embedder, description: str = "embedding", batch: int = 16):
        self.inner = inner
        self.description = description
        self.batch = batch

    def __getattr__(self, name: str):
        return getattr(self.inner, name)  # model, dimension, token counts: the wrapped embedder's

    def embed(self, texts):
        """The wrapped embedder's vectors, ``batch`` texts at a time, the bar advancing per batch."""
        out: list[list[float]] = []
        with progress_bar(len(texts), self.description) as advance:
            for start in range(0, len(texts), self.batch):
                part = list(texts[start : start + self.batch])
                out.extend(self.inner.embed(part))
                advance(len(part))
        return out


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
    """``value`` with everything JSON cannot hold as strings: timestamps in ISO 8601, UUIDs, decimals."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return _iso_duration(value)
    return str(value)


def _iso_duration(value: dt.timedelta) -> str:
    """An ISO 8601 duration (``PT24H``, ``P1DT30M``, ``-PT5M``)."""
    total = int(value.total_seconds())
    sign, total = ("-", -total) if total < 0 else ("", total)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    time = "".join(f"{n}{u}" for n, u in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    if not days and not time:
        return "PT0S"
    return f"{sign}P{f'{days}D' if days else ''}{f'T{time}' if time else ''}"


def _csv_cell(value) -> str:
    value = jsonable(value)
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def csv_text(rows: list[dict], columns: list[str]) -> str:
    """``rows`` as CSV: a header line of ``columns``, then one line per row (JSON for structures)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_cell(row.get(c)) for c in columns])
    return out.getvalue()


def _is_id(value) -> bool:
    return isinstance(value, uuid.UUID) or (
        isinstance(value, str) and len(value) == 36 and value.count("-") == 4
    )


def cell(value) -> str:
    """One table cell: JSON for structures, long text cut at 60 characters."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(jsonable(value), ensure_ascii=False)
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def emit(rows: list[dict], as_json: bool, columns: list[str] | None = None, title: str | None = None) -> None:
    """Print rows in the command's ``--format``: JSON (every key), CSV (``columns``, a header line) or a
    rich table of ``columns`` (default: every key of the first row) whose ids are never folded."""
    fmt = output_format(as_json)
    if fmt == "json":
        click.echo(json.dumps(jsonable(rows), indent=2, ensure_ascii=False))
        return
    columns = columns or (list(rows[0].keys()) if rows else [])
    if fmt == "csv":
        click.echo(csv_text(rows, columns), nl=False)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    needed = 1  # the table's width when its ids are whole and the other columns narrow
    for col in columns:
        if any(_is_id(row.get(col)) for row in rows):
            # An id is copied whole into the next command: one line, never folded nor cut.
            table.add_column(col, no_wrap=True, min_width=36, overflow="ignore")
            needed += 36 + 3
        else:
            table.add_column(col, overflow="fold")
            needed += min(len(col), 8) + 3
    for row in rows:
        table.add_row(*(cell(row.get(c)) for c in columns))
    console = Console()
    if console.width < needed:  # a narrow terminal: the lines get longer than it, the ids stay whole
        console = Console(width=needed)
    console.print(table)
    if not rows:
        click.echo("(no rows)")


def emit_one(row: dict, as_json: bool) -> None:
    """Print one record in the command's ``--format``: JSON, CSV (a header, one line) or key/values."""
    fmt = output_format(as_json)
    if fmt == "json":
        click.echo(json.dumps(jsonable(row), indent=2, ensure_ascii=False))
        return
    if fmt == "csv":
        click.echo(csv_text([row], list(row)), nl=False)
        return
    for key, value in row.items():
        click.echo(f"{key:18} {cell(value)}")
