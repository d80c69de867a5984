"""The audit chain (head, verify, log, seal) and erasure (ADRs 0018, 0019)."""

from __future__ import annotations

import json
import sys

import click

from .. import audit as faudit
from .. import db as fdb
from .. import maintenance
from ..errors import InvalidArgument
from .base import (
    EXIT_REFUSED,
    OWNER_ROLE,
    FarmopsGroup,
    as_member,
    data_dir_option,
    dsn_option,
    emit,
    json_option,
    jsonable,
    main,
    member_options,
    open_client,
    resolve_dsn,
)

VERIFY_COLUMNS = ["farm_id", "entries", "head_seq", "head_hash", "broken_at_seq", "problem"]
LOG_COLUMNS = ["seq", "at", "actor_user", "action", "object_table", "object_id", "detail"]


@main.group(cls=FarmopsGroup)
def audit() -> None:
    """The tamper-evident audit chain: its head, its verification, its entries, the sealing job."""


@audit.command("head")
@member_options
def audit_head(farm_id, user_id, dsn, data_dir) -> None:
    """Print the farm's chain head as SEQ:HASH, to keep outside the database (as its owner with --user,
    else as farmops_owner)."""
    if user_id:
        with as_member(farm_id, user_id, dsn, data_dir) as t:
            found = t.audit_head()
    else:
        if not farm_id:
            raise click.UsageError("give --farm (and --user to act as the farm's owner)")
        with open_client(dsn, data_dir, role=OWNER_ROLE) as client:
            found = client.audit_head(farm_id)
    click.echo(f"{found['seq']}:{found['hash']}")


@audit.command("verify")
@click.option(
    "--trusted-head",
    metavar="SEQ:HASH",
    help="A head printed earlier by `farmops audit head`: the chain must extend it.",
)
@json_option
@member_options
def audit_verify(trusted_head, as_json, farm_id, user_id, dsn, data_dir) -> None:
    """Re-hash the chain and every ledger leg, record and autonomy change it covers; exit 1 if broken.

    As a farm's owner (--farm, --user) or as farmops_owner: one farm (--farm) or every farm."""
    if trusted_head is not None:
        try:  # malformed: a usage error before anything connects
            faudit.parse_trusted_head(trusted_head)
        except InvalidArgument as exc:
            raise click.BadParameter(str(exc), param_hint="--trusted-head") from None
    if user_id:
        with as_member(farm_id, user_id, dsn, data_dir) as t:
            rows = [t.verify_audit(trusted_head)]
    else:
        with open_client(dsn, data_dir, role=OWNER_ROLE) as client:
            rows = client.verify_audit(farm_id, trusted_head)
    if as_json:
        click.echo(json.dumps(jsonable(rows), indent=2))
    else:
        emit(rows, False, VERIFY_COLUMNS, title="audit chain")
    broken = [r for r in rows if r["broken_at_seq"] is not None]
    if not as_json:
        click.echo(f"{len(broken)} broken" if broken else "intact")
    if broken:
        sys.exit(EXIT_REFUSED)


@audit.command("log")
@click.option("--limit", type=int, default=50, show_default=True)
@json_option
@member_options
def audit_log(limit, as_json, farm_id, user_id, dsn, data_dir) -> None:
    """Print the farm's newest sealed entries (actors by user id, empty once erased)."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        rows = t.audit_log(limit)
    emit(rows, as_json, LOG_COLUMNS, title="audit log")


@audit.command("seal")
@dsn_option
@data_dir_option
def audit_seal(dsn, data_dir) -> None:
    """Link every farm's finished audit entries into its chain, as farmops_maintainer, then vacuum the
    audit queue (PostgreSQL 17+; run it from cron beside `farmops maintenance expire`; audit head and
    verify seal the farm they read anyway)."""
    with fdb.connect(resolve_dsn(dsn, data_dir), autocommit=True) as conn:
        click.echo(f"sealed {maintenance.seal_audit(conn)} entries")
        if maintenance.vacuum_audit_queue(conn):
            click.echo("vacuumed the audit queue")
        else:
            click.echo("the audit queue is left to autovacuum (PostgreSQL 16, or no MAINTAIN on it)")


@main.group(cls=FarmopsGroup)
def erase() -> None:
    """Erase a person (farm owner) or a whole farm (farmops_owner); the books and the chain still verify."""


@erase.command("member")
@click.argument("member_user_id")
@json_option
@member_options
def erase_member(member_user_id, as_json, farm_id, user_id, dsn, data_dir) -> None:
    """Erase MEMBER_USER_ID from the farm: no row keeps their identifier or personal text."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        counts = t.erase_member_data(member_user_id)
    click.echo(json.dumps(jsonable(counts), indent=2 if as_json else None))


@erase.command("farm")
@click.argument("erased_farm_id")
@dsn_option
@data_dir_option
def erase_farm(erased_farm_id, dsn, data_dir) -> None:
    """Erase every person of a farm and its knowledge, as farmops_owner."""
    with open_client(dsn, data_dir, role=OWNER_ROLE) as client:
        click.echo(json.dumps(jsonable(client.erase_farm(erased_farm_id))))
