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
from .errors import FarmopsError
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
    """Make ``name`` an application login: LOGIN NOSUPERUSER NOBYPASSRLS, member of farmops_app.

    Idempotent and safe against a concurrent caller creating the same role; returns whether
    this call created it. ``password`` is set (again) when given. A role of that name that
    is a superuser or bypasses RLS is refused: row level security would not apply to it.
    Needs a connection whose role may create roles (the demo, tests and benchmarks use the
    superuser); the step is committed with the caller's transaction.
    """
    role = sql.Identifier(name)
    secret = sql.SQL(" PASSWORD {}").format(sql.Literal(password)) if password is not None else sql.SQL("")
    with db.translated(), conn.transaction():
        created = not _role_exists(conn, name)
        if created:
            try:
                with conn.transaction():  # a savepoint: a concurrent creator wins, we carry on
                    conn.execute(
                        sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS IN ROLE {}{}").format(
                            role, sql.Identifier(db.APP_ROLE), secret
                        )
                    )
            except (psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
                created = False
        if not created:
            row = db.execute(
                conn,
                "SELECT rolsuper, rolbypassrls, rolcanlogin, pg_has_role(oid, %s, 'MEMBER') AS is_app "
                "FROM pg_roles WHERE rolname = %s",
                [db.APP_ROLE, name],
            ).fetchone()
            if row["rolsuper"] or row["rolbypassrls"]:
                raise FarmopsError(f"role {name} exists as a superuser or with BYPASSRLS: not an app login")
            if not row["is_app"]:
                conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(db.APP_ROLE), role))
            if password is not None or not row["rolcanlogin"]:
                conn.execute(sql.SQL("ALTER ROLE {} LOGIN{}").format(role, secret))
    return created


def _role_exists(conn: psycopg.Connection, name: str) -> bool:
    return db.execute(conn, "SELECT FROM pg_roles WHERE rolname = %s", [name]).fetchone() is not None
