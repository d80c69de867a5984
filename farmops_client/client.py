"""The library's entry: a connection pool, the chosen embedder and Bedrock client, tenant sessions.

    client = farmops_client.connect("postgresql://svc@db/farmops", bedrock=bedrock_runtime_client,
                                    embedder="titan")
    with client.tenant(farm_id, "alice") as t:
        result = t.ask("We sold 40 birds to Musa for 180,000 naira", feature="assistant")
        print(result.text, result.drafts)
        t.confirm_draft(result.drafts[0])

``client.tenant(...)`` is a :class:`TenantSession` that borrows a pooled connection per transaction
(none while a model or embedding call runs): the
transaction rules of :mod:`farmops_client.session`, plus every operation of the domain modules
(:mod:`.tenancy`, :mod:`.credits`, :mod:`.write_path`, :mod:`.knowledge`, :mod:`.assistant`)
bound as a method with the module function's own signature.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from . import (
    assistant,
    audit,
    control,
    credits,
    db,
    knowledge,
    maintenance,
    observability,
    spend,
    tenancy,
    trust,
    write_path,
)
from .assistant.guarding import Guardrail
from .db import configure_connection
from .embeddings import Embedder, embedder_named
from .errors import DatabaseUnavailable
from .session import Lender, Session

__all__ = ["Client", "TenantSession", "configure_connection", "connect"]

log = logging.getLogger("farmops_client")


class Client:
    """Entry point of the library: a pool plus the Bedrock client, embedder and model runs use.

    ``embedder`` is an :class:`~farmops_client.embeddings.Embedder`, or ``"titan"`` / ``"lexical"``
    (see :func:`~farmops_client.embeddings.embedder_named`), or ``None``: then nothing that
    embeds (ingest, search, remember, ask) runs; farmops never chooses one for you, since the
    vectors of two models must not share an index.
    """

    def __init__(
        self,
        pool: ConnectionPool,
        *,
        bedrock: Any = None,
        embedder: Embedder | str | None = None,
        model: str | None = None,
        owns_pool: bool = False,
        role: str | None = None,
    ):
        self.pool = pool
        #: The database role every transaction of this client acts as (``SET LOCAL ROLE``), or ``None``.
        self.role = role
        self.bedrock = bedrock
        self.embedder = embedder_named(embedder, bedrock) if isinstance(embedder, str) else embedder
        self.model = model or assistant.DEFAULT_MODEL
        self._owns_pool = owns_pool
        #: Shared by this client's sessions: values that do not depend on the member (tool specs).
        self.cache: dict[str, Any] = {}
        #: A Bedrock Guardrail every ``ask()`` of this client's sessions applies (unless it passes its own):
        #: ``client.guardrail = Guardrail("gr-id", "1")``.
        self.guardrail: Guardrail | None = None
        if self.embedder is not None:
            log.info("farmops: embeddings by %s", self.embedder.model)

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
    def _borrow(self) -> Iterator[psycopg.Connection]:
        """A pooled connection as the pool gives it (autocommit, pgvector registered), no role set."""
        try:
            with self.pool.connection() as conn:
                db.ensure_vector(conn)
                yield conn
        except PoolTimeout as exc:
            raise DatabaseUnavailable(f"no database connection available: {exc}") from exc

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection (pgvector registered), translated errors; no tenant context.

        With ``connect(role=...)`` the block is ONE transaction acting as that role (``SET LOCAL
        ROLE``), committed at its end; without, the connection is autocommit.
        """
        with self._borrow() as conn:
            if self.role:
                with db.local_role(conn, self.role):
                    yield conn
            else:
                yield conn

    @contextlib.contextmanager
    def tenant(self, farm_id: UUID | str, user_id: str) -> Iterator[TenantSession]:
        """A session acting as ``user_id`` in ``farm_id`` (see :mod:`farmops_client.session`)."""
        with TenantSession(self, self._borrow, farm_id, user_id) as session:
            yield session

    @contextlib.contextmanager
    def tenant_from_token(self, token: str) -> Iterator[TenantSession]:
        """A session as the farm and user a signed identity token names. The database verifies the token
        (``farmops.begin_tenant_verified``) here and again in every transaction of the session."""
        with self._transaction() as conn:
            db.call(conn, "begin_tenant_verified", token=token)
            ctx = db.execute(conn, "SELECT farm_id, user_id FROM farmops.tenant_context()").fetchone()
        with self.tenant(ctx["farm_id"], ctx["user_id"]) as session:
            session.token = token
            yield session

    # -- operator helpers (no tenant context) -------------------------------------------------------------
    @contextlib.contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection]:
        with self._borrow() as conn, db.local_role(conn, self.role):
            yield conn

    def create_farm(self, name: str, owner_user_id: str) -> UUID:
        """``farmops.create_farm``: a new farm with ``owner_user_id`` as its owner."""
        with self._transaction() as conn:
            return tenancy.create_farm(conn, name, owner_user_id)

    def expire_reservations(self) -> int:
        """``farmops.expire_reservations()`` as farmops_maintainer (:mod:`.maintenance`): refund every
        reservation past its expiry; returns how many. The client's login must be a maintainer."""
        with self._borrow() as conn:
            return maintenance.expire_reservations(conn)

    def expire(self) -> dict[str, int]:
        """Both maintenance expiry jobs as farmops_maintainer: ``{"reservations": n, "drafts": m}``."""
        with self._borrow() as conn:
            return maintenance.expire(conn)

    def seal_audit(self) -> int:
        """``farmops.seal_audit()`` as farmops_maintainer: link every farm's finished audit entries."""
        with self._borrow() as conn:
            return maintenance.seal_audit(conn)

    def audit_head(self, farm_id: UUID | str) -> dict[str, Any]:
        """``farmops.audit_head`` of any farm (the package owner; a farm owner uses its session's)."""
        with self._transaction() as conn:
            return audit.audit_head(conn, farm_id)

    def verify_audit(
        self, farm_id: UUID | str | None = None, trusted_head: str | None = None
    ) -> list[dict[str, Any]]:
        """``farmops.verify_audit`` of one farm or every farm (the package owner): one row per farm."""
        with self._transaction() as conn:
            return audit.verify_audit(conn, farm_id, trusted_head)

    def erase_farm(self, farm_id: UUID | str) -> dict[str, Any]:
        """``farmops.erase_farm`` (the package owner): erase every person of a farm and its knowledge."""
        with self._transaction() as conn:
            return audit.erase_farm(conn, farm_id)

    def check_invariants(self, farm_id: UUID | str | None = None) -> list[dict[str, Any]]:
        """``farmops.check_invariants``: violations (empty list = healthy)."""
        with self._transaction() as conn:
            return credits.check_invariants(conn, farm_id)

    def check_tenancy(self) -> list[dict[str, Any]]:
        """``farmops.check_tenancy()``: the tenant boundary's problems in the catalog (empty = healthy)."""
        with self._transaction() as conn:
            return observability.check_tenancy(conn)

    def metrics(self) -> list[dict[str, Any]]:
        """``farmops.metrics()`` as the client's role: every farm for ``farmops_auditor``, none for the app"""
        with self._transaction() as conn:
            return observability.metrics(conn)

    def prometheus_text(self) -> str:
        """:meth:`metrics` in the Prometheus text format (``prometheus_client``)."""
        with self._transaction() as conn:
            return observability.prometheus_text(conn)

    def run_lineage(self, run_id: UUID | str) -> dict[str, Any]:
        """``farmops.run_lineage`` as the client's role (an auditor: any farm's run)."""
        with self._transaction() as conn:
            return observability.run_lineage(conn, run_id)

    def redact_pii(self, text: str) -> dict[str, Any]:
        """``farmops.redact_pii`` (no tenant needed): the redacted text and the findings."""
        with self._transaction() as conn:
            return trust.redact_pii(conn, text)

    def check_text(self, text: str, stage: str) -> dict[str, Any]:
        """``farmops.check_text`` with the global guard rules (a session's ``check_text`` adds its farm's)."""
        with self._transaction() as conn:
            return trust.check_text(conn, text, stage)


class TenantSession(Session):
    """One user acting in one farm: a :class:`~farmops_client.session.Session` and its operations."""

    def __init__(self, client: Client, conn: psycopg.Connection | Lender, farm_id: UUID | str, user_id: str):
        super().__init__(
            conn,
            farm_id,
            user_id,
            embedder=client.embedder,
            bedrock=client.bedrock,
            model=client.model,
            cache=client.cache,
            db_role=client.role,
        )
        self.guardrail = client.guardrail
        self.client = client

    # tenancy
    farm = tenancy.farm
    members = tenancy.members
    add_member = tenancy.add_member
    remove_member = tenancy.remove_member
    set_member_role = tenancy.set_member_role
    # credits and runs
    grant_credits = credits.grant_credits
    balance = credits.balance
    ledger = credits.ledger
    runs = credits.runs
    run = credits.run
    check_invariants = credits.check_farm_invariants
    # money: budgets, usage and cost, the finance statement
    set_budget = spend.set_budget
    drop_budget = spend.drop_budget
    budgets = spend.budgets
    budget_alerts = spend.budget_alerts
    usage = spend.usage
    month_to_date = spend.month_to_date
    record_usage = spend.record_usage
    rates = spend.rates
    adjust_credits = spend.adjust_credits
    credit_statement = spend.credit_statement
    # spend control
    policies = control.policies
    set_policy = control.set_policy
    drop_policy = control.drop_policy
    explain_policy = control.explain_policy
    set_farm_time_zone = control.set_farm_time_zone
    approve_run = control.approve_run
    reject_run = control.reject_run
    runs_awaiting_approval = control.runs_awaiting_approval
    rate_limits = control.rate_limits
    set_rate_limits = control.set_rate_limits
    # the write path
    drafts = write_path.drafts
    draft = write_path.draft
    confirm_draft = write_path.confirm_draft
    discard_draft = write_path.discard_draft
    set_autonomy = write_path.set_autonomy
    autonomy = write_path.autonomy
    set_draft_ttl = write_path.set_draft_ttl
    draft_channel = write_path.draft_channel
    recommendations = write_path.recommendations
    decide_recommendation = write_path.decide_recommendation
    give_feedback = write_path.give_feedback
    feedback = write_path.feedback
    evals = write_path.evals
    eval_rules = write_path.eval_rules
    # knowledge
    ingest_document = knowledge.ingest_document
    delete_document = knowledge.delete_document
    documents = knowledge.documents
    search = knowledge.search
    remember = knowledge.remember
    # the governed run
    ask = assistant.ask
    ask_stream = assistant.ask_stream
    # the audit chain and erasure
    audit_head = audit.farm_audit_head
    verify_audit = audit.verify_farm_audit
    audit_log = audit.audit_log
    erase_member_data = audit.erase_member_data

    def set_pii_policy(self, keep_kinds: list[str]) -> list[str]:
        """``farmops.set_pii_policy`` (owner): the PII kinds this farm keeps in stored text."""
        return trust.set_pii_policy(self.begin(), keep_kinds)

    def pii_policy(self) -> dict[str, Any]:
        """``farmops.pii_policy``: the kinds this farm keeps, who set them and when."""
        return trust.pii_policy(self.begin())

    def set_guard_rule(self, name: str, category: str, stages: list[str], pattern: str, **kw: Any) -> UUID:
        """``farmops.set_guard_rule`` (owner): add or replace one of this farm's guard rules."""
        return trust.set_guard_rule(self.begin(), name, category, stages, pattern, **kw)

    def drop_guard_rule(self, name: str) -> None:
        """``farmops.drop_guard_rule`` (owner)."""
        trust.drop_guard_rule(self.begin(), name)

    def allow_guard_match(self, pattern: str, reason: str, **kw: Any) -> UUID:
        """``farmops.allow_guard_match`` (owner): an allow rule for a false positive; its id."""
        return trust.allow_guard_match(self.begin(), pattern, reason, **kw)

    def lineage(self, run_id: UUID | str) -> dict[str, Any]:
        """``farmops.run_lineage``: one run of this farm as a DAG (RunNotFound for another farm's)."""
        return observability.run_lineage(self.begin(), run_id)

    def metrics(self) -> list[dict[str, Any]]:
        """``farmops.metrics()``: this farm's metrics (row level security)."""
        return observability.metrics(self.begin())

    def prometheus_text(self) -> str:
        """This farm's metrics in the Prometheus text format."""
        return observability.prometheus_text(self.begin())


#: ``DISCARD ALL`` but for ``DISCARD PLANS``: every session state a borrower can leave goes, one round
#: trip; the cached plans stay (they hold no data), so the next borrower's governed run does not re-plan
#: every statement of every function it calls (that made a run's database time several times longer).
RESET_SESSION = (
    "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; DEALLOCATE ALL; UNLISTEN *; "
    "SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES"
)


def connect(
    dsn: str | ConnectionPool | None = None,
    *,
    pool: ConnectionPool | None = None,
    auth: Any = None,
    bedrock: Any = None,
    embedder: Embedder | str | None = None,
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
    without one ``ask`` is unavailable. ``embedder`` is chosen here and nowhere else (see
    :class:`Client`). ``role`` is the database role every transaction acts as: ``SET LOCAL ROLE``
    first in each one, never a session ``SET ROLE``, so nothing outlives a transaction (PgBouncer's
    transaction mode). The CLI uses ``farmops_app`` so that even a superuser DSN acts under row level
    security, which superusers otherwise bypass. With your own ``pool`` the client's transactions set
    it the same way; statements you run on that pool yourself use :func:`farmops_client.db.local_role`.
    """
    if isinstance(dsn, ConnectionPool):
        dsn, pool = None, dsn
    if pool is not None:
        return Client(pool, bedrock=bedrock, embedder=embedder, model=model, role=role)
    if not dsn:
        raise ValueError("connect() needs a DSN or a pool")
    # PgBouncer transaction mode: no server-side prepared statements (psycopg would prepare after 5
    # executions, on a server connection the next transaction may not get).
    static = {"autocommit": True, "connect_timeout": connect_timeout, "prepare_threshold": None}

    def kwargs() -> dict[str, Any]:
        return {**static, **(auth() if auth else {})}

    # One connection first, so a bad DSN, password or role fails fast with libpq's reason (the role
    # checked in a transaction of its own: a session SET ROLE would stay on a PgBouncer server connection).
    with db.connect(dsn, **kwargs()) as probe, db.local_role(probe, role):
        pass

    def reset(conn: psycopg.Connection) -> None:
        # A returned connection forgets a borrower's session state (SET, WITH HOLD cursors, LISTEN,
        # advisory locks, temp tables, a SET ROLE of its own), unless the governed run's driver vouched
        # that it ran only its own transaction-scoped steps: then the reset's round trip is saved.
        if db.needs_reset(conn):
            with db.translated():
                conn.execute(RESET_SESSION)

    new_pool = ConnectionPool(
        dsn,
        kwargs=kwargs,
        min_size=min_size,
        max_size=max_size,
        configure=configure_connection,
        reset=reset,
        open=True,
        name="farmops",
    )
    return Client(new_pool, bedrock=bedrock, embedder=embedder, model=model, owns_pool=True, role=role)
