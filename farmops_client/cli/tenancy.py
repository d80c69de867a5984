"""Farms, members and the logins allowed to act in this installation."""

from __future__ import annotations

import click

from .. import tenancy
from .base import (
    OWNER_ROLE,
    FarmopsGroup,
    as_member,
    data_dir_option,
    dsn_option,
    emit,
    json_option,
    main,
    member_options,
    open_client,
    owner_transaction,
)

#: The member roles of farmops.role_capabilities.
ROLES = ["owner", "manager", "worker", "viewer", "agent"]


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
    with open_client(dsn, data_dir) as client:
        click.echo(client.create_farm(name, owner))


@farm.command("list")
@json_option
@dsn_option
@data_dir_option
def farm_list(as_json: bool, dsn, data_dir) -> None:
    """List every farm (operator command: the DSN's role must be able to SET ROLE farmops_owner)."""
    with open_client(dsn, data_dir, role=OWNER_ROLE) as client, client.connection() as conn:
        rows = tenancy.list_farms(conn)
    emit(rows, as_json, title="farms")


@main.group(cls=FarmopsGroup)
def member() -> None:
    """Manage the members of a farm."""


@member.command("add")
@click.argument("new_user")
@click.argument("role", type=click.Choice(ROLES))
@member_options
def member_add(new_user, role, farm_id, user_id, dsn, data_dir) -> None:
    """Add NEW_USER with ROLE to the farm (the acting --user must be an owner)."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        t.add_member(new_user, role)
    click.echo(f"added {new_user} as {role}")


@member.command("remove")
@click.argument("member_user")
@member_options
def member_remove(member_user, farm_id, user_id, dsn, data_dir) -> None:
    """Remove MEMBER_USER from the farm (owner only; the last owner stays)."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        t.remove_member(member_user)
    click.echo(f"removed {member_user}")


@member.command("role")
@click.argument("member_user")
@click.argument("role", type=click.Choice(ROLES))
@member_options
def member_role(member_user, role, farm_id, user_id, dsn, data_dir) -> None:
    """Change MEMBER_USER's role to ROLE (owner only; never adds a member; the last owner stays)."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        t.set_member_role(member_user, role)
    click.echo(f"{member_user} is now {role}")


@member.command("list")
@json_option
@member_options
def member_list(as_json, farm_id, user_id, dsn, data_dir) -> None:
    """List the farm's members."""
    with as_member(farm_id, user_id, dsn, data_dir) as t:
        rows = t.members()
    emit(rows, as_json, ["user_id", "role", "created_at"], title="members")


@main.group(cls=FarmopsGroup)
def login() -> None:
    """Which login roles may act in this installation (roles are cluster-wide), as farmops_owner."""


@login.command("allow")
@click.argument("name")
@dsn_option
@data_dir_option
def login_allow(name, dsn, data_dir) -> None:
    """Let the existing login role NAME act in this installation (and connect to its database)."""
    with owner_transaction(dsn, data_dir) as conn:
        new = tenancy.allow_login(conn, name)
    click.echo(f"allowed {name}" if new else f"{name} was already allowed")


@login.command("disallow")
@click.argument("name")
@dsn_option
@data_dir_option
def login_disallow(name, dsn, data_dir) -> None:
    """NAME may no longer act in this installation; its CONNECT granted by farmops is revoked."""
    with owner_transaction(dsn, data_dir) as conn:
        listed = tenancy.disallow_login(conn, name)
    click.echo(f"disallowed {name}" if listed else f"{name} was not allowed")


@login.command("list")
@json_option
@dsn_option
@data_dir_option
def login_list(as_json, dsn, data_dir) -> None:
    """The logins allowed here, with their groups (review after an upgrade on a shared cluster)."""
    with owner_transaction(dsn, data_dir) as conn:
        rows = tenancy.list_logins(conn)
    emit(rows, as_json, ["login", "groups", "can_login", "allowed_at", "allowed_by"], title="allowed logins")
