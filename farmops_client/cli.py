"""The ``farmops`` command line, for operators, DBAs and CI.

Exit codes: 0 success; 1 the database refused the operation (a documented SQLSTATE or
a migration problem); 2 bad usage; 3 the database could not be reached.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
from pathlib import Path

import click
import psycopg

from . import db as fdb
from . import embedded, maintenance, tenancy
from . import migrate as migrations
from .aws import AwsIdentities, has_aws_credentials
from .client import Client, connect
from .demo import run_demo
from .embeddings import EMBEDDER_NAMES, Embedder, embedder_named
from .errors import BY_SQLSTATE, DatabaseUnavailable, FarmopsError
from .paths import sql_dir
from .testing import FakeBedrock, fake_bedrock_client

EXIT_REFUSED = 1
EXIT_UNAVAILABLE = 3


class FarmopsGroup(click.Group):
    """A click group that turns farmops and database errors into one line and an exit code."""

    def invoke(self, ctx: click.Context):
        try:
            with fdb.translated():
                return super().invoke(ctx)
        except (FarmopsError, psycopg.Error) as exc:
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
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def errors_cmd(as_json: bool) -> None:
    """List the documented SQLSTATEs and the Python exception each maps to."""
    rows = [
        {"sqlstate": k, "exception": v.__name__, "meaning": (v.__doc__ or "").split(": ", 1)[-1]}
        for k, v in sorted(BY_SQLSTATE.items())
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        click.echo(f"{r['sqlstate']}  {r['exception']:22} {r['meaning']}")


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


def _client(dsn, data_dir, *, role: str | None = APP_ROLE, bedrock=None, embedder=None) -> Client:
    return connect(
        resolve_dsn(dsn, data_dir),
        role=role,
        bedrock=bedrock,
        embedder=embedder,
        min_size=1,
        max_size=2,
        connect_timeout=int(os.environ.get("FARMOPS_CONNECT_TIMEOUT", "10")),
    )


def _need(farm_id: str | None, user_id: str | None) -> tuple[str, str]:
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
def _as_member(farm_id: str | None, user_id: str | None, dsn: str | None, data_dir: Path | None):
    """One tenant session (one transaction) as ``user_id`` in ``farm_id``."""
    farm_id, user_id = _need(farm_id, user_id)
    with _client(dsn, data_dir) as client, client.tenant(farm_id, user_id) as t:
        yield t


def _bedrock_client():
    ids = AwsIdentities.from_env()
    if not has_aws_credentials(ids.bedrock):
        raise FarmopsError("no AWS credentials for Bedrock (configure them, or try `farmops demo`)")
    return ids.bedrock_client()


def _embedder(name: str, bedrock=None) -> Embedder:
    """The --embedder choice; titan without a Bedrock client yet uses the environment's credentials."""
    if name == "titan" and bedrock is None:
        bedrock = _bedrock_client()
    return embedder_named(name, bedrock)


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(_jsonable(value), ensure_ascii=False)
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def emit(rows: list[dict], as_json: bool, columns: list[str] | None = None, title: str | None = None) -> None:
    """Print rows as JSON or as a rich table of ``columns`` (default: every key of the first row)."""
    if as_json:
        click.echo(json.dumps(_jsonable(rows), indent=2, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    columns = columns or (list(rows[0].keys()) if rows else [])
    table = Table(title=title, show_lines=False)
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    Console().print(table)
    if not rows:
        click.echo("(no rows)")


def emit_one(row: dict, as_json: bool) -> None:
    """Print one record as JSON or as key/value lines."""
    if as_json:
        click.echo(json.dumps(_jsonable(row), indent=2, ensure_ascii=False))
        return
    for key, value in row.items():
        click.echo(f"{key:18} {_cell(value)}")


@main.group(cls=FarmopsGroup)
def farm() -> None:
    """Create and list farms (tenants)."""


@farm.command("create")
@click.argument("name")
@click.option("--owner", required=True, help="User id of the farm's first owner.")
@dsn_option
@data_dir_option
def farm_create(name: str, owner: str, dsn, data_dir) -> None:
    """Create a farm owned by --owner and print its id."""
    with _client(dsn, data_dir) as client:
        click.echo(client.create_farm(name, owner))


@farm.command("list")
@json_option
@dsn_option
@data_dir_option
def farm_list(as_json: bool, dsn, data_dir) -> None:
    """List every farm (operator command: the DSN's role must be able to SET ROLE farmops_owner)."""
    with _client(dsn, data_dir, role=OWNER_ROLE) as client, client.connection() as conn:
        rows = tenancy.list_farms(conn)
    emit(rows, as_json, title="farms")


@main.group(cls=FarmopsGroup)
def member() -> None:
    """Manage the members of a farm."""


@member.command("add")
@click.argument("new_user")
@click.argument("role", type=click.Choice(["owner", "manager", "worker", "viewer", "agent"]))
@member_options
def member_add(new_user, role, farm_id, user_id, dsn, data_dir) -> None:
    """Add NEW_USER with ROLE to the farm (the acting --user must be an owner)."""
    with _as_member(farm_id, user_id, dsn, data_dir) as t:
        t.add_member(new_user, role)
    click.echo(f"added {new_user} as {role}")


@member.command("list")
@json_option
@member_options
def member_list(as_json, farm_id, user_id, dsn, data_dir) -> None:
    """List the farm's members."""
    with _as_member(farm_id, user_id, dsn, data_dir) as t:
        rows = t.members()
    emit(rows, as_json, ["user_id", "role"], title="members")


@main.group(cls=FarmopsGroup)
def credits() -> None:
    """Grant credits and read the balance and the append-only ledger."""


@credits.command("grant")
@click.argument("amount", type=int)
@click.option("--reason", required=True, help="Why (stored on the ledger row).")
@member_options
def credits_grant(amount, reason, farm_id, user_id, dsn, data_dir) -> None:
    """Grant AMOUNT credits to the farm (owner only); print the new balance."""
    with _as_member(farm_id, user_id, dsn, data_dir) as t:
        click.echo(t.grant_credits(amount, reason))


@credits.command("balance")
@member_options
def credits_balance(farm_id, user_id, dsn, data_dir) -> None:
    """Print the farm's credit balance."""
    with _as_member(farm_id, user_id, dsn, data_dir) as t:
        click.echo(t.balance())


LEDGER_COLUMNS = ["seq", "kind", "delta", "balance_after", "ai_run_id", "actor", "reason", "created_at"]


@credits.command("ledger")
@click.option("--run", "run_id", help="Only the legs of this run.")
@click.option("--limit", type=int, default=100, show_default=True)
@json_option
@member_options
def credits_ledger(run_id, limit, as_json, farm_id, user_id, dsn, data_dir) -> None:
    """Print the farm's ledger (oldest first)."""
    with _as_member(farm_id, user_id, dsn, data_dir) as t:
        rows = t.ledger(run_id=run_id, limit=limit)
    emit(rows, as_json, LEDGER_COLUMNS, title="credit ledger")


DRAFT_COLUMNS = ["id", "record_type", "status", "payload", "created_by", "decided_by", "created_at"]


@main.group(cls=FarmopsGroup)
def drafts() -> None:
    """Review the assistant's drafts: list, show, confirm, discard."""


@drafts.command("list")
@click.option("--status", default="pending", show_default=True, help="Status to list, or 'all'.")
@json_option
@member_options
def drafts_list(status, as_json, farm_id, user_id, dsn, data_dir) -> None:
    """List the farm's drafts."""
    with _as_member(farm_id, user_id, dsn, data_dir) as t:
        rows = t.drafts(status=None if status == "all" else status)
    emit(rows, as_json, DRAFT_COLUMNS, title="drafts")


@drafts.command("show")
@click.argument("draft_id")
@json_option
@member_options
def drafts_show(draft_id, as_json, farm_id, user_id, dsn, data_dir) -> None:
    """Show one draft (exit 1 if it is not visible in this farm)."""
    with _as_member(farm_id, user_id, dsn, data_dir) as t:
        row = t.draft(draft_id)
    if row is None:
        raise FarmopsError(f"no draft {draft_id} in this farm")
    emit_one(row, as_json)


@drafts.command("confirm")
@click.argument("draft_id")
@click.option("--edits", help="JSON object of payload fields to change before writing.")
@member_options
def drafts_confirm(draft_id, edits, farm_id, user_id, dsn, data_dir) -> None:
    """Confirm a draft as a human member: the record is written in the same transaction."""
    farm_id, user_id = _need(farm_id, user_id)
    try:
        parsed = json.loads(edits) if edits else None
    except json.JSONDecodeError as exc:
        raise click.UsageError(f"--edits is not JSON: {exc}") from exc
    with _client(dsn, data_dir) as client, client.tenant(farm_id, user_id) as t:
        row = t.confirm_draft(draft_id, parsed)
    click.echo(f"confirmed {row['id']} -> record {row.get('record_id')}")


@drafts.command("discard")
@click.argument("draft_id")
@click.option("--reason", help="Why (stored on the draft).")
@member_options
def drafts_discard(draft_id, reason, farm_id, user_id, dsn, data_dir) -> None:
    """Discard a draft."""
    with _as_member(farm_id, user_id, dsn, data_dir) as t:
        row = t.discard_draft(draft_id, reason)
    click.echo(f"discarded {row['id']}")


@main.group(cls=FarmopsGroup)
def kb() -> None:
    """The farm's knowledge base: add documents, search them."""


@kb.command("add")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--title", help="Title (default: the file name).")
@embedder_option
@member_options
def kb_add(file: Path, title, embedder, farm_id, user_id, dsn, data_dir) -> None:
    """Chunk, embed and store FILE (UTF-8 text) as a farm document; print its id."""
    farm_id, user_id = _need(farm_id, user_id)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise click.UsageError(f"{file} is not UTF-8 text") from exc
    with _client(dsn, data_dir, embedder=_embedder(embedder)) as client, client.tenant(farm_id, user_id) as t:
        click.echo(t.ingest_document(title or file.name, text))


@kb.command("search")
@click.argument("text")
@click.option("-k", "k", type=int, default=4, show_default=True)
@click.option("--no-global", is_flag=True, help="Leave out the shared knowledge base.")
@embedder_option
@json_option
@member_options
def kb_search(text, k, no_global, embedder, as_json, farm_id, user_id, dsn, data_dir) -> None:
    """Search the farm's documents and memories (and the global base) for TEXT."""
    farm_id, user_id = _need(farm_id, user_id)
    with _client(dsn, data_dir, embedder=_embedder(embedder)) as client, client.tenant(farm_id, user_id) as t:
        rows = t.search(text, k=k, include_global=not no_global)
    emit(rows, as_json, ["score", "source", "content"], title="search")


@main.command("ask", cls=click.Command)
@click.argument("text")
@click.option("--feature", default="assistant", show_default=True)
@click.option("--max-tokens", type=int, default=512, show_default=True)
@click.option("--model", envvar="FARMOPS_MODEL", help="Bedrock model id (env FARMOPS_MODEL).")
@click.option("--fake", is_flag=True, help="Answer with FakeBedrock (scripted echo) instead of AWS.")
@embedder_option
@json_option
@member_options
def ask_cmd(
    text, feature, max_tokens, model, fake, embedder, as_json, farm_id, user_id, dsn, data_dir
) -> None:
    """One governed assistant run: reserve, retrieve, Converse with tools, settle."""
    farm_id, user_id = _need(farm_id, user_id)
    if fake:
        click.echo(f"Bedrock: {FakeBedrock.LABEL}", err=True)
        bedrock = fake_bedrock_client(FakeBedrock(default=lambda body: FakeBedrock.text("(scripted) noted.")))
    else:
        bedrock = _bedrock_client()
    with (
        _client(dsn, data_dir, bedrock=bedrock, embedder=_embedder(embedder, bedrock)) as client,
        client.tenant(farm_id, user_id) as t,
    ):
        result = t.ask(text, feature=feature, max_tokens=max_tokens, model=model)
    if as_json:
        click.echo(json.dumps(_jsonable(dataclasses.asdict(result)), indent=2, ensure_ascii=False))
        return
    click.echo(result.text)
    click.echo(
        f"-- run {result.run_id} {result.status} ({result.stop_reason}); credits reserved "
        f"{result.credits_reserved}, charged {result.credits_charged}; drafts {len(result.drafts)}, "
        f"written {len(result.records)}, refused {len(result.refused)}",
        err=True,
    )


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


@main.group(cls=FarmopsGroup)
def runs() -> None:
    """AI runs: list them, show one with its ledger legs, retrievals and drafts."""


@runs.command("list")
@click.option("--limit", type=int, default=50, show_default=True)
@json_option
@member_options
def runs_list(limit, as_json, farm_id, user_id, dsn, data_dir) -> None:
    """The farm's most recent runs."""
    with _as_member(farm_id, user_id, dsn, data_dir) as t:
        rows = t.runs(limit=limit)
    emit(rows, as_json, RUN_COLUMNS, title="AI runs")


@runs.command("show")
@click.argument("run_id")
@json_option
@member_options
def runs_show(run_id, as_json, farm_id, user_id, dsn, data_dir) -> None:
    """One run with its ledger legs, retrievals and drafts (exit 1 if not visible)."""
    with _as_member(farm_id, user_id, dsn, data_dir) as t:
        row = t.run(run_id)
    if row is None:
        raise FarmopsError(f"no run {run_id} in this farm")
    if as_json:
        emit_one(row, True)
        return
    ledger, retrievals, drafts_ = row.pop("ledger"), row.pop("retrievals"), row.pop("drafts")
    emit_one(row, False)
    emit(ledger, False, LEDGER_COLUMNS, title="ledger legs")
    emit(retrievals, False, None, title="retrievals")
    emit(drafts_, False, DRAFT_COLUMNS, title="drafts")


@main.command("check")
@json_option
@member_options
def check_cmd(as_json, farm_id, user_id, dsn, data_dir) -> None:
    """Check the financial invariants (one farm as a member, or all as farmops_owner) and the tenant
    boundary in the catalog (farmops.check_tenancy); exit 1 on any problem."""
    if farm_id or user_id:
        farm_id, user_id = _need(farm_id, user_id)
        with _client(dsn, data_dir) as client:
            with client.tenant(farm_id, user_id) as t:
                rows = t.check_invariants()
            problems = client.check_tenancy()
    else:
        with _client(dsn, data_dir, role=OWNER_ROLE) as client:
            rows = client.check_invariants()
            problems = client.check_tenancy()
    if as_json:
        click.echo(
            json.dumps(_jsonable({"invariants": rows, "tenancy": problems}), indent=2, ensure_ascii=False)
        )
    else:
        if rows:
            emit(rows, False, ["farm_id", "invariant", "detail"], title="invariant violations")
        else:
            click.echo("invariants hold")
        if problems:
            emit(
                problems, False, ["object_type", "object_name", "problem", "detail"], title="tenancy problems"
            )
        else:
            click.echo("tenancy holds")
    if rows or problems:
        sys.exit(EXIT_REFUSED)


@main.group(cls=FarmopsGroup)
def maintenance_group() -> None:
    """Cross-farm maintenance jobs, as farmops_maintainer (run them from cron or pg_cron)."""


main.add_command(maintenance_group, "maintenance")


@maintenance_group.command("expire")
@click.option("--max-runs", type=int, default=10000, show_default=True, help="Runs expired per call at most.")
@json_option
@dsn_option
@data_dir_option
def maintenance_expire(max_runs, as_json, dsn, data_dir) -> None:
    """Refund reservations past their expiry and expire drafts past their approval TTL.

    Connects with the DSN as it is and runs each job in its own transaction after SET LOCAL ROLE
    farmops_maintainer: the DSN's login must be a maintainer login of this installation
    (tenancy.create_maintainer_login), the package owner or a superuser.
    """
    with fdb.connect(resolve_dsn(dsn, data_dir), autocommit=True) as conn:
        counts = maintenance.expire(conn, max_runs=max_runs)
    if as_json:
        click.echo(json.dumps(counts))
    else:
        click.echo(f"expired {counts['reservations']} reservations, {counts['drafts']} drafts")


@main.group(cls=FarmopsGroup)
def login() -> None:
    """Which login roles may act in this installation (roles are cluster-wide), as farmops_owner."""


@login.command("allow")
@click.argument("name")
@dsn_option
@data_dir_option
def login_allow(name, dsn, data_dir) -> None:
    """Let the existing login role NAME act in this installation (and connect to its database)."""
    with fdb.connect(resolve_dsn(dsn, data_dir), role=OWNER_ROLE, autocommit=True) as conn:
        new = tenancy.allow_login(conn, name)
    click.echo(f"allowed {name}" if new else f"{name} was already allowed")


@login.command("disallow")
@click.argument("name")
@dsn_option
@data_dir_option
def login_disallow(name, dsn, data_dir) -> None:
    """NAME may no longer act in this installation; its CONNECT granted by farmops is revoked."""
    with fdb.connect(resolve_dsn(dsn, data_dir), role=OWNER_ROLE, autocommit=True) as conn:
        listed = tenancy.disallow_login(conn, name)
    click.echo(f"disallowed {name}" if listed else f"{name} was not allowed")


@login.command("list")
@json_option
@dsn_option
@data_dir_option
def login_list(as_json, dsn, data_dir) -> None:
    """The logins allowed here, with their groups (review after an upgrade on a shared cluster)."""
    with fdb.connect(resolve_dsn(dsn, data_dir), role=OWNER_ROLE, autocommit=True) as conn:
        rows = tenancy.list_logins(conn)
    emit(rows, as_json, ["login", "groups", "can_login", "allowed_at", "allowed_by"], title="allowed logins")


@main.command("demo")
@click.option(
    "--bedrock", "use_bedrock", is_flag=True, help="Call the real Amazon Bedrock (needs AWS credentials)."
)
@dsn_option
@data_dir_option
def demo_cmd(use_bedrock, dsn, data_dir) -> None:
    """The whole governed loop on the embedded database, with scripted Bedrock responses by default."""
    run_demo(resolve_dsn(dsn, data_dir), use_bedrock=use_bedrock)


if __name__ == "__main__":  # pragma: no cover
    main()
