"""Observability: what an operator checks. Today the tenancy checker, decided by the database.

``farmops.check_tenancy()`` reads only the catalog (no tenant rows), so it runs on any connection,
with or without a tenant context, as the application or as the package owner.
"""

from __future__ import annotations

from typing import Any

import psycopg

from . import db


def check_tenancy(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """``farmops.check_tenancy()``: ``{"object_type", "object_name", "problem", "detail"}`` per problem of
    the tenant boundary (RLS, keys, indexes, views, functions, the application role); empty = healthy."""
    return db.call(conn, "check_tenancy")
