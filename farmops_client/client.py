"""The library: a connection pool, tenant-scoped sessions, and the governed AI run.

    client = farmops_client.connect("postgresql://svc@db/farmops", bedrock=bedrock_runtime_client)
    with client.tenant(farm_id, "alice") as t:
        result = t.ask("We sold 40 birds to Musa for 180,000 naira", feature="assistant")
        print(result.text, result.drafts)
        t.confirm_draft(result.drafts[0])

``client.tenant(...)`` checks out one pooled connection. Its statements run in ONE
transaction (opened lazily by the first statement, with ``farmops.begin_tenant``), committed
when the block ends without an exception and rolled back otherwise. :meth:`TenantSession.ask`
is different on purpose: a governed run is several short transactions (reserve, retrieve,
each tool call, settle) with the network calls in between, so it refuses to run while the
session holds an open transaction (call :meth:`TenantSession.commit` first).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from uuid import UUID

import psycopg
from pgvector.psycopg import register_vector
from psycopg_pool import ConnectionPool, PoolTimeout

from . import db
from .embeddings import Embedder, LexicalEmbedder, TitanEmbedder, chunk_text
from .errors import DatabaseUnavailable, FarmopsError

_REGISTER_LOCK = threading.Lock()


class SessionBusy(FarmopsError):
    """A governed run was started while the tenant session holds an open transaction."""


def configure_connection(conn: psycopg.Connection) -> None:
    """Pool ``configure`` callback: register pgvector's adapters once per connection.

    Pass it to your own ``ConnectionPool(configure=...)`` when you hand farmops a pool.
    """
    with db.translated():
        register_vector(conn)
        if not conn.autocommit:
            conn.commit()


def _ensure_vector(conn: psycopg.Connection) -> None:
    if conn.adapters.types.get("vector") is None:
        with _REGISTER_LOCK:
            configure_connection(conn)


class Client:
    """Entry point of the library: a pool plus the Bedrock client and embedder runs use."""

    def __init__(
        self,
        pool: ConnectionPool,
        *,
        bedrock: Any = None,
        embedder: Embedder | None = None,
        model: str | None = None,
        owns_pool: bool = False,
    ):
        from .run import DEFAULT_MODEL

        self.pool = pool
        self.bedrock = bedrock
        if embedder is None:
            embedder = TitanEmbedder(bedrock) if bedrock is not None else LexicalEmbedder()
        self.embedder = embedder
        self.model = model or DEFAULT_MODEL
        self._owns_pool = owns_pool

    # -- lifecycle ---------------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the pool if this client created it."""
        if self._owns_pool:
            self.pool.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection (pgvector registered), translated errors; no tenant context."""
        try:
            with self.pool.connection() as conn:
                _ensure_vector(conn)
                yield conn
        except PoolTimeout as exc:
            raise DatabaseUnavailable(f"no database connection available: {exc}") from exc

    @contextlib.contextmanager
    def tenant(self, farm_id: UUID | str, user_id: str) -> Iterator[TenantSession]:
        """A session acting as ``user_id`` in ``farm_id`` (see the module docstring)."""
        with self.connection() as conn:
            session = TenantSession(self, conn, UUID(str(farm_id)), user_id)
            try:
                yield session
            except BaseException as exc:
                session._end(exc)
                raise
            else:
                session._end(None)

    @contextlib.contextmanager
    def tenant_from_token(self, token: str) -> Iterator[TenantSession]:
        """A session as the farm and user a signed identity token names. The database verifies the token
        (``farmops.begin_tenant_verified``) here and again in every transaction of the session."""
        with self.connection() as conn, db.translated(), conn.transaction():
            db.call(conn, "begin_tenant_verified", token=token)
            ctx = db.execute(conn, "SELECT farm_id, user_id FROM farmops.tenant_context()").fetchone()
        with self.tenant(ctx["farm_id"], ctx["user_id"]) as session:
            session.token = token
            yield session

    # -- operator helpers (no tenant context) -------------------------------------------------------------
    def create_farm(self, name: str, owner_user_id: str) -> UUID:
        """``farmops.create_farm``: a new farm with ``owner_user_id`` as its owner."""
        with self.connection() as conn, db.translated(), conn.transaction():
            return db.call(conn, "create_farm", name=name, owner_user_id=owner_user_id)[0]["create_farm"]

    def expire_reservations(self) -> int:
        """``farmops.expire_reservations()``: refund every reservation past its expiry; returns how many."""
        with self.connection() as conn, db.translated(), conn.transaction():
            return db.call(conn, "expire_reservations")[0]["expire_reservations"]

    def check_invariants(self, farm_id: UUID | str | None = None) -> list[dict[str, Any]]:
        """``farmops.check_invariants``: violations (empty list = healthy)."""
        with self.connection() as conn, db.translated(), conn.transaction():
            return db.call(conn, "check_invariants", farm_id=farm_id)


def store_memory(conn: psycopg.Connection, content: str, vector, model: str, run_id: UUID | None) -> UUID:
    """In the caller's transaction: ``farmops.remember`` the fact, then index it with its vector."""
    memory_id = db.call(conn, "remember", content=content, run_id=run_id)[0]["remember"]
    db.call(
        conn,
        "embed_memory",
        {"embedding": "public.vector"},
        memory_id=memory_id,
        embedding=vector,
        model=model,
    )
    return memory_id


class TenantSession:
    """One user acting in one farm: one lazily opened transaction plus governed runs (``ask``)."""

    #: An identity token: set, every transaction verifies it instead of calling ``begin_tenant``.
    token: str | None = None

    def __init__(self, client: Client, conn: psycopg.Connection, farm_id: UUID, user_id: str):
        self.client = client
        self.conn = conn
        self.farm_id = farm_id
        self.user_id = user_id
        self.role: str | None = None
        self._tx: psycopg.Transaction | None = None

    # -- transactions -------------------------------------------------------------------------------------
    @property
    def in_transaction(self) -> bool:
        """Whether the session's transaction is open."""
        return self._tx is not None

    def _begin(self) -> None:
        if self._tx is None:
            tx = self.conn.transaction()
            with db.translated():
                tx.__enter__()
            self._tx = tx
            try:
                self._set_context()
            except BaseException as exc:
                self._end(exc)
                raise

    def _set_context(self) -> None:
        if self.token is not None:
            row = db.call(self.conn, "begin_tenant_verified", token=self.token)[0]
            self.role = row["begin_tenant_verified"]
            return
        row = db.call(self.conn, "begin_tenant", farm_id=self.farm_id, user_id=self.user_id)[0]
        self.role = row["begin_tenant"]

    def _end(self, exc: BaseException | None) -> None:
        tx, self._tx = self._tx, None
        if tx is not None:
            with db.translated():
                if exc is None:
                    tx.__exit__(None, None, None)
                else:
                    tx.__exit__(type(exc), exc, exc.__traceback__)

    def commit(self) -> None:
        """Commit the session's transaction now; the next statement opens a new one."""
        self._end(None)

    def rollback(self) -> None:
        """Roll the session's transaction back now; the next statement opens a new one."""
        if self._tx is not None:
            self._end(psycopg.Rollback())

    @contextlib.contextmanager
    def short_transaction(self) -> Iterator[psycopg.Connection]:
        """A separate, committed-at-exit transaction with the tenant context (used by ``ask``)."""
        if self._tx is not None:
            raise SessionBusy("commit or roll back the session's transaction before a governed run")
        with db.translated(), self.conn.transaction():
            self._set_context()
            yield self.conn

    # -- statements ---------------------------------------------------------------------------------------
    def execute(self, query, params: Sequence[Any] | Mapping[str, Any] | None = None) -> psycopg.Cursor:
        """Run a statement in the session's transaction (dict rows)."""
        self._begin()
        return db.execute(self.conn, query, params)

    def call(self, function: str, casts: Mapping[str, str] | None = None, /, **kwargs: Any) -> list[dict]:
        """Call ``farmops.<function>`` with named arguments in the session's transaction."""
        self._begin()
        return db.call(self.conn, function, casts, **kwargs)

    # -- credits and runs ---------------------------------------------------------------------------------
    def grant_credits(self, credits: int, reason: str) -> int:
        """``farmops.grant_credits`` for this farm (owner only); returns the new balance."""
        return self.call("grant_credits", farm_id=self.farm_id, credits=credits, reason=reason)[0][
            "grant_credits"
        ]

    def balance(self) -> int:
        """The farm's credit balance."""
        return self.execute(
            "SELECT credit_balance FROM farmops.farms WHERE id = %s", [self.farm_id]
        ).fetchone()["credit_balance"]

    def farm(self) -> dict[str, Any]:
        """The farm row as this member sees it."""
        return self.execute("SELECT * FROM farmops.farms WHERE id = %s", [self.farm_id]).fetchone()

    def members(self) -> list[dict[str, Any]]:
        """The farm's members."""
        return self.execute("SELECT * FROM farmops.farm_members ORDER BY user_id").fetchall()

    def add_member(self, user_id: str, role: str) -> None:
        """``farmops.add_member`` (owner only)."""
        self.call("add_member", farm_id=self.farm_id, user_id=user_id, role=role)

    def ledger(self, *, run_id: UUID | str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Ledger rows of the farm (newest last), optionally of one run."""
        return self.execute(
            "SELECT * FROM (SELECT * FROM farmops.credit_ledger WHERE %(run)s::uuid IS NULL "
            "OR ai_run_id = %(run)s::uuid ORDER BY id DESC LIMIT %(limit)s) AS l ORDER BY id",
            {"run": run_id, "limit": limit},
        ).fetchall()

    def runs(self, *, limit: int = 50) -> list[dict[str, Any]]:
        """The farm's most recent AI runs."""
        return self.execute(
            "SELECT * FROM farmops.ai_runs ORDER BY reserved_at DESC, id LIMIT %s", [limit]
        ).fetchall()

    def run(self, run_id: UUID | str) -> dict[str, Any] | None:
        """One run with its ledger legs, retrievals and drafts (``None`` if not visible)."""
        row = self.execute("SELECT * FROM farmops.ai_runs WHERE id = %s::uuid", [str(run_id)]).fetchone()
        if row is None:
            return None
        row["ledger"] = self.ledger(run_id=run_id)
        row["retrievals"] = self._rows_of_run("ai_run_retrievals", run_id)
        row["drafts"] = self._rows_of_run("assistant_drafts", run_id)
        return row

    def _rows_of_run(self, table: str, run_id: UUID | str) -> list[dict[str, Any]]:
        from psycopg import sql

        if not db.relation_exists(self.conn, table):
            return []
        query = sql.SQL("SELECT * FROM farmops.{} WHERE ai_run_id = %s::uuid").format(sql.Identifier(table))
        return self.execute(query, [str(run_id)]).fetchall()

    # -- drafts and autonomy -------------------------------------------------------------------------------
    def drafts(self, *, status: str | None = "pending", limit: int = 100) -> list[dict[str, Any]]:
        """The farm's assistant drafts (by default the pending ones), newest first."""
        return self.execute(
            "SELECT * FROM farmops.assistant_drafts WHERE %(status)s::text IS NULL OR status = %(status)s "
            "ORDER BY created_at DESC LIMIT %(limit)s",
            {"status": status, "limit": limit},
        ).fetchall()

    def draft(self, draft_id: UUID | str) -> dict[str, Any] | None:
        """One draft, or ``None`` if not visible."""
        return self.execute(
            "SELECT * FROM farmops.assistant_drafts WHERE id = %s::uuid", [str(draft_id)]
        ).fetchone()

    def confirm_draft(self, draft_id: UUID | str, edits: dict[str, Any] | None = None) -> dict[str, Any]:
        """``farmops.confirm_draft`` as this (human) member; returns the draft row."""
        from psycopg.types.json import Jsonb

        return self.call(
            "confirm_draft", draft_id=draft_id, edits=Jsonb(edits) if edits is not None else None
        )[0]

    def discard_draft(self, draft_id: UUID | str, reason: str | None = None) -> dict[str, Any]:
        """``farmops.discard_draft``; returns the draft row."""
        return self.call("discard_draft", draft_id=draft_id, reason=reason)[0]

    def set_autonomy(
        self,
        tier: str | None = None,
        auto_categories: list[str] | None = None,
        record_autonomy: dict[str, str] | None = None,
    ) -> None:
        """``farmops.set_autonomy`` (owner only); ``None`` leaves a setting unchanged."""
        from psycopg.types.json import Jsonb

        self.call(
            "set_autonomy",
            tier=tier,
            auto_categories=Jsonb(auto_categories) if auto_categories is not None else None,
            record_autonomy=Jsonb(record_autonomy) if record_autonomy is not None else None,
        )

    # -- knowledge -----------------------------------------------------------------------------------------
    def ingest_document(self, title: str, content: str, *, max_chars: int = 1200) -> UUID:
        """Chunk, embed (outside the transaction when none is open) and ``farmops.ingest_document``."""
        from pgvector import Vector

        chunks = chunk_text(content, max_chars) or [content]
        vectors = [Vector(v) for v in self.client.embedder.embed(chunks)]
        return self.call(
            "ingest_document",
            {"embeddings": "public.vector[]"},
            title=title,
            content=content,
            chunks=chunks,
            embeddings=vectors,
            model=self.client.embedder.model,
        )[0]["ingest_document"]

    def delete_document(self, document_id: UUID | str) -> None:
        """``farmops.delete_document``."""
        self.call("delete_document", document_id=document_id)

    def search(
        self, text: str, *, k: int = 4, include_global: bool = True, source_types: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """Embed ``text`` and ``farmops.search`` this farm's knowledge (plus the global base)."""
        from pgvector import Vector

        vector = Vector(self.client.embedder.embed([text])[0])
        return self.call(
            "search",
            {"query": "public.vector"},
            query=vector,
            k=k,
            include_global=include_global,
            source_types=source_types,
        )

    def remember(self, content: str, *, run_id: UUID | None = None) -> UUID:
        """Store a durable farm fact and make it retrievable (``farmops.remember`` + ``embed_memory``).

        The fact is embedded first (outside the transaction when none is open); the database
        deduplicates it and indexes the text it stored.
        """
        from pgvector import Vector

        vector = Vector(self.client.embedder.embed([content])[0])
        self._begin()
        return store_memory(self.conn, content, vector, self.client.embedder.model, run_id)

    def check_invariants(self) -> list[dict[str, Any]]:
        """``farmops.check_invariants`` for this farm."""
        return self.call("check_invariants", farm_id=self.farm_id)

    # -- the governed run -----------------------------------------------------------------------------------
    def ask(self, prompt: str, **options: Any):
        """Run the governed assistant loop; see :func:`farmops_client.run.ask` for the options."""
        from .run import ask

        return ask(self, prompt, **options)


def _probe(conninfo: str, kwargs: dict[str, Any], role: str | None = None) -> None:
    """Open one connection first, so a bad DSN, password or role fails fast with libpq's reason."""
    try:
        with psycopg.connect(conninfo, **kwargs) as conn:
            if role:
                from psycopg import sql

                conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
    except psycopg.errors.InsufficientPrivilege as exc:
        raise FarmopsError(f"the DSN's role may not act as {role}: {exc.diag.message_primary}") from exc
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DatabaseUnavailable(f"cannot connect to the database: {first}") from exc


def connect(
    dsn: str | ConnectionPool | None = None,
    *,
    pool: ConnectionPool | None = None,
    auth: Any = None,
    bedrock: Any = None,
    embedder: Embedder | None = None,
    model: str | None = None,
    min_size: int = 1,
    max_size: int = 8,
    connect_timeout: int = 10,
    role: str | None = None,
) -> Client:
    """Open a :class:`Client` on a DSN (a pool is created) or on your own ``ConnectionPool``.

    ``auth`` is a callable returning extra connection kwargs for each new connection, e.g.
    :class:`farmops_client.aws.IamAuthToken` for RDS IAM tokens. ``bedrock`` is a
    ``bedrock-runtime`` client (see :meth:`farmops_client.aws.AwsIdentities.bedrock_client`);
    without one the embedder is the offline lexical one and ``ask`` is unavailable.
    ``role`` runs ``SET ROLE`` on every new connection (the CLI uses ``farmops_app`` so that
    even a superuser DSN acts under row level security, which superusers otherwise bypass).
    """
    if isinstance(dsn, ConnectionPool):
        dsn, pool = None, dsn
    if pool is not None:
        return Client(pool, bedrock=bedrock, embedder=embedder, model=model)
    if not dsn:
        raise ValueError("connect() needs a DSN or a pool")
    static = {"autocommit": True, "connect_timeout": connect_timeout}

    def kwargs() -> dict[str, Any]:
        return {**static, **(auth() if auth else {})}

    _probe(dsn, kwargs(), role)

    def configure(conn: psycopg.Connection) -> None:
        if role:
            from psycopg import sql

            with db.translated():
                conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        configure_connection(conn)

    new_pool = ConnectionPool(
        dsn,
        kwargs=kwargs,
        min_size=min_size,
        max_size=max_size,
        configure=configure,
        open=True,
        name="farmops",
    )
    return Client(new_pool, bedrock=bedrock, embedder=embedder, model=model, owns_pool=True)
