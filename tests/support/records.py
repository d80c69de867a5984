"""A product's own record table, outside schema farmops, registered with ``register_record_type``.

Shared by the audit suites (tests/trust/test_audit.py, test_audit_seal_odd_values.py) and the erasure
suite (tests/trust/test_erasure_everywhere.py): ``acme.egg_collections``, registered as
``egg_collection`` (class routine), built by the superuser and handed to farmops_owner as the README
("What a product grants") describes.
"""

from __future__ import annotations

import psycopg
from psycopg.types.json import Jsonb

from .calls import call

#: The product's table as the audit chain names it (object_table).
PRODUCT_TABLE = "acme.egg_collections"
#: egg_collection's input schema: one bounded integer property.
EGGS = {
    "type": "object",
    "additionalProperties": False,
    "required": ["crates"],
    "properties": {
        "crates": {"type": "integer", "minimum": 1, "maximum": 10000, "description": "Crates."},
    },
}


def product_table(
    admin: psycopg.Connection,
    owner: psycopg.Connection,
    *,
    owned_by: str | None = None,
    columns: str = "",
    properties: dict | None = None,
) -> str:
    """Create and register acme.egg_collections; returns its name (``PRODUCT_TABLE``).

    ``columns``: more column definitions (SQL, after ``crates``), e.g. a person column
    ``"user_id text"``; ``properties``: more input schema properties (each one a column the payload
    fills). ``owned_by`` (the product's own role): after registering it (which takes the package
    owner's ownership), that role takes the table back and grants farmops_owner only what writing
    records takes (SELECT, INSERT), not what erasure takes."""
    admin.execute("CREATE SCHEMA acme")
    admin.execute("GRANT USAGE ON SCHEMA acme TO farmops_app, farmops_owner")
    more = f"{columns}, " if columns else ""
    admin.execute(
        f"""CREATE TABLE acme.egg_collections (
               farm_id uuid NOT NULL REFERENCES farmops.farms (id),
               id uuid NOT NULL DEFAULT gen_random_uuid(),
               draft_id uuid, created_by text NOT NULL, crates integer NOT NULL, {more}
               PRIMARY KEY (farm_id, id), UNIQUE (farm_id, draft_id),
               FOREIGN KEY (farm_id, draft_id) REFERENCES farmops.assistant_drafts (farm_id, id))"""
    )
    admin.execute("ALTER SCHEMA acme OWNER TO farmops_owner")
    admin.execute("ALTER TABLE acme.egg_collections OWNER TO farmops_owner")
    admin.execute("GRANT SELECT ON acme.egg_collections TO farmops_app")
    schema = {**EGGS, "properties": {**EGGS["properties"], **(properties or {})}}
    call(
        owner, "register_record_type", name="egg_collection", **{"class": "routine"}, description="Eggs",
        target_schema="acme", target_table="egg_collections", input_schema=Jsonb(schema),
    )  # fmt: skip
    if owned_by:  # registered, then taken back by the product's own migration role
        admin.execute(f'ALTER TABLE acme.egg_collections OWNER TO "{owned_by}"')
        admin.execute("GRANT SELECT, INSERT ON acme.egg_collections TO farmops_owner")
    return PRODUCT_TABLE
