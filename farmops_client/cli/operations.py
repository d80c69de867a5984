"""Operator commands: the invariant and tenancy check, maintenance jobs, the demo."""

from __future__ import annotations

import json
import sys

import click

from .. import db as fdb
from .. import maintenance
from ..demo import run_demo
from .base import (
    EXIT_REFUSED,
    OWNER_ROLE,
    POSITIVE_INT32,
    FarmopsGroup,
    data_dir_option,
    dsn_option,
    emit,
    json_option,
    jsonable,
    main,
    member_options,
    need_member,
    open_client,
    resolve_dsn,
)


@main.command("check")
@json_option
@member_options
def check_cmd(as_json, farm_id, user_id, dsn, data_dir) -> None:
    """Check the financial invariants (one farm as a member, or all as farmops_owner) and the tenant
    boundary in the catalog (farmops.check_tenancy); exit 1 on any problem."""
    if farm_id or user_id:
        farm_id, user_id = need_member(farm_id, user_id)
        with open_client(dsn, data_dir) as client:
            with client.tenant(farm_id, user_id) as t:
                rows = t.check_invariants()
            problems = client.check_tenancy()
    else:
        with open_client(dsn, data_dir, role=OWNER_ROLE) as client:
            rows = client.check_invariants()
            problems = client.check_tenancy()
    if as_json:
        click.echo(
            json.dumps(jsonable({"invariants": rows, "tenancy": problems}), indent=2, ensure_ascii=False)
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
@click.option(
    "--max-runs", type=POSITIVE_INT32, default=10000, show_default=True, help="Runs expired per call at most."
)
@json_option
@dsn_option
@data_dir_option
def maintenance_expire(max_runs, as_json, dsn, data_dir) -> None:
    """Refund reservations past their expiry and expire drafts past their approval TTL.

    Connects with the DSN as it is and runs each job in its own transaction after SET LOCAL ROLE
    farmops_maintainer: the DSN's login must be a maintainer login of this installation
    (tenancy.create_maintainer_login), the package owner or a superuser. Run it every few minutes
    from cron (*/5 * * * * farmops maintenance expire --dsn postgresql://maint@db/farmops) or let
    pg_cron call the SQL jobs (README, "Maintenance jobs").
    """
    with fdb.connect(resolve_dsn(dsn, data_dir), autocommit=True) as conn:
        counts = maintenance.expire(conn, max_runs=max_runs)
    if as_json:
        click.echo(json.dumps(counts))
    else:
        click.echo(f"expired {counts['reservations']} reservations, {counts['drafts']} drafts")


@main.command("demo")
@click.option(
    "--bedrock", "use_bedrock", is_flag=True, help="Call the real Amazon Bedrock (needs AWS credentials)."
)
@dsn_option
@data_dir_option
def demo_cmd(use_bedrock, dsn, data_dir) -> None:
    """The whole governed loop on the embedded database, with scripted Bedrock responses by default."""
    run_demo(resolve_dsn(dsn, data_dir), use_bedrock=use_bedrock)
