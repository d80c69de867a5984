"""Tenancy: farms, their members, and the login roles an application connects as.

Functions taking a :class:`~farmops_client.session.Session` run in its transaction as its
member; functions taking a connection run on it as it is (operator steps, no tenant context).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from . import db
from .errors import FarmopsError, NotAMember
from .session import Session


def create_farm(conn: psycopg.Connection, name: str, owner_user_id: str) -> UUID:
    """``farmops.create_farm``: a new farm with ``owner_user_id`` as its owner."""
    return db.value(conn, "create_farm", name=name, owner_user_id=owner_user_id)


def list_farms(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Every farm visible to the connection's role, with its member count (operators: farmops_owner)."""
    return db.execute(
        conn,
        "SELECT f.id, f.name, f.credit_balance, f.ai_autonomy, f.created_at, "
        "(SELECT count(*) FROM farmops.farm_members m WHERE m.farm_id = f.id) AS members "
        "FROM farmops.farms f ORDER BY f.created_at, f.id",
    ).fetchall()


def farm(t: Session) -> dict[str, Any]:
    """The farm row as this member sees it."""
    return t.execute("SELECT * FROM farmops.farms WHERE id = %s", [t.farm_id]).fetchone()


def members(t: Session) -> list[dict[str, Any]]:
    """The farm's members."""
    return t.execute("SELECT * FROM farmops.farm_members ORDER BY user_id").fetchall()


def add_member(t: Session, user_id: str, role: str) -> None:
    """``farmops.add_member`` (owner only)."""
    t.call("add_member", farm_id=t.farm_id, user_id=user_id, role=role)


def create_app_login(conn: psycopg.Connection, name: str, password: str | None = None) -> bool:
    """Make ``name`` an application login of this installation: LOGIN NOSUPERUSER NOBYPASSRLS,
    member of farmops_app, and listed by ``farmops.allow_login`` (roles are cluster-wide; the
    list says which logins may act in THIS database and gives them CONNECT).

    Idempotent and safe against a concurrent caller creating the same role; returns whether
    this call created it. ``password`` is set (again) when given. A role of that name that
    is a superuser or bypasses RLS is refused: row level security would not apply to it.
    Needs a connection whose role may create roles and act as farmops_owner (the demo, tests
    and benchmarks use the superuser); the step is committed with the caller's transaction.
    """
    return _create_login(conn, name, db.APP_ROLE, password)


def create_maintainer_login(conn: psycopg.Connection, name: str, password: str | None = None) -> bool:
    """:func:`create_app_login` for the operator's job: a login in farmops_maintainer (the expiry
    jobs, ``farmops maintenance expire``) instead of farmops_app, allowed in this installation."""
    return _create_login(conn, name, db.MAINTAINER_ROLE, password)


def allow_login(conn: psycopg.Connection, name: str) -> bool:
    """``farmops.allow_login`` (package owner): ``name`` may act in this installation; True if new."""
    return db.value(conn, "allow_login", login=name)


def disallow_login(conn: psycopg.Connection, name: str) -> bool:
    """``farmops.disallow_login`` (package owner): ``name`` may no longer act here; True if it was listed."""
    return db.value(conn, "disallow_login", login=name)


def list_logins(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """The logins allowed in this installation with their farmops groups (package owner)."""
    return db.execute(
        conn,
        "SELECT l.login, l.allowed_at, l.allowed_by, r.rolcanlogin AS can_login, "
        "array_remove(ARRAY[CASE WHEN pg_has_role(r.oid, 'farmops_app', 'MEMBER') THEN 'farmops_app' END, "
        "CASE WHEN pg_has_role(r.oid, 'farmops_maintainer', 'MEMBER') THEN 'farmops_maintainer' END], NULL) "
        "AS groups FROM farmops.app_logins l LEFT JOIN pg_roles r ON r.rolname = l.login ORDER BY l.login",
    ).fetchall()


def _create_login(conn: psycopg.Connection, name: str, group: str, password: str | None) -> bool:
    role = sql.Identifier(name)
    secret = sql.SQL(" PASSWORD {}").format(sql.Literal(password)) if password is not None else sql.SQL("")
    with db.translated(), conn.transaction():
        created = not _role_exists(conn, name)
        if created:
            try:
                with conn.transaction():  # a savepoint: a concurrent creator wins, we carry on
                    conn.execute(
                        sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS IN ROLE {}{}").format(
                            role, sql.Identifier(group), secret
                        )
                    )
            except (psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
                created = False
        if not created:
            row = db.execute(
                conn,
                "SELECT rolsuper, rolbypassrls, rolcanlogin, pg_has_role(oid, %s, 'MEMBER') AS is_member "
                "FROM pg_roles WHERE rolname = %s",
                [group, name],
            ).fetchone()
            if row["rolsuper"] or row["rolbypassrls"]:
                raise FarmopsError(f"role {name} exists as a superuser or with BYPASSRLS: not an app login")
            if not row["is_member"]:
                conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), role))
            if password is not None or not row["rolcanlogin"]:
                conn.execute(sql.SQL("ALTER ROLE {} LOGIN{}").format(role, secret))
        allow_login(conn, name)
    return created


def _role_exists(conn: psycopg.Connection, name: str) -> bool:
    return db.execute(conn, "SELECT FROM pg_roles WHERE rolname = %s", [name]).fetchone() is not None


def remove_member(t: Session, user_id: str) -> None:
    """``farmops.remove_member`` (owner only): OF002 if ``user_id`` is no member, OF005 the last owner."""
    t.call("remove_member", farm_id=t.farm_id, user_id=user_id)


def set_member_role(t: Session, user_id: str, role: str) -> None:
    """Change an existing member's role (``farmops.add_member``, owner only); unlike :func:`add_member`
    it never adds anyone: :class:`~farmops_client.errors.NotAMember` if ``user_id`` is no member."""
    found = t.execute(
        "SELECT 1 FROM farmops.farm_members WHERE farm_id = %s AND user_id = %s",
        [t.farm_id, user_id],
    ).fetchone()
    if found is None:
        raise NotAMember(f"{user_id[:256]} is not a member of this farm")
    add_member(t, user_id, role)
