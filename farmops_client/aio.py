"""The asyncio twin of the client: the same names and the same governed run, over psycopg's async API.

    client = await farmops_client.aio.connect(dsn, bedrock=bedrock_runtime_client, embedder="titan")
    async with client.tenant(farm_id, "alice") as t:
        result = await t.ask("We sold 40 birds to Musa", feature="assistant")
        async with contextlib.aclosing(t.ask_stream("and 10 more?")) as events:
            async for event in events: ...

Nothing here decides anything: a governed run is the same effect generator as the sync client's
(:func:`farmops_client.assistant.core.governed_run`); this module only executes its effects with
``psycopg.AsyncConnection`` from a ``psycopg_pool.AsyncConnectionPool``, one borrowed connection
per database step, returned before any model or embedding call. Bedrock is called through the
same botocore client in the client's worker threads (``AsyncClient.offload``, like
``asyncio.to_thread`` with a pool sized for many chats: aiobotocore is not required), a stream's
events too, one at a time; the event loop never blocks on the network.

Differences from the sync session, on purpose: an :class:`AsyncTenantSession` has no long
transaction of its own; each operation is one short transaction with the tenant context.
A cancelled ``ask`` (or an abandoned ``ask_stream``) still settles its run, shielded from a second
cancellation, exactly once. Close an abandoned stream with ``contextlib.aclosing`` (or ``aclose()``)
so that it settles at once rather than when the garbage collector finalises it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from pgvector import Vector
from pgvector.psycopg import register_vector_async
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from . import credits, db, knowledge, observability, spend, write_path
from .arguments import int_arg, text_arg, uuid_arg
from .assistant import core, streaming
from .assistant.core import AskResult, Finished, TextDelta, Tool, ToolOutcome
from .assistant.guarding import Guardrail
from .assistant.options import AskOptions, make_plan
from .assistant.run import PROVIDER_EFFECTS, provider_effect
from .audit import AUDIT_LOG_QUERY, parse_trusted_head
from .client import RESET_SESSION
from .embeddings import Embedder, embedder_named
from .errors import DatabaseUnavailable, FarmopsError, NotAMember, NotConfigured

__all__ = ["AsyncClient", "AsyncTenantSession", "connect"]


async def _send(conn: psycopg.AsyncConnection, step: core.Call | core.Statement) -> psycopg.AsyncCursor:
    cur = conn.cursor(row_factory=dict_row)
    with db.translated():
        if isinstance(step, core.Call):
            await cur.execute(db.function_query(step.function, step.casts, step.kwargs), step.kwargs)
        else:
            await cur.execute(step.query, step.params)
    return cur


async def _local_role(conn: psycopg.AsyncConnection, role: str | None) -> None:
    """``SET LOCAL ROLE role`` first in the current transaction (nothing outlives it), if any role."""
    if role:
        await _send(
            conn, core.Statement("SELECT pg_catalog.set_config('role', %(role)s, true)", {"role": role})
        )


async def _rows(cur: psycopg.AsyncCursor) -> list[dict[str, Any]]:
    with db.translated():
        return await cur.fetchall()


class AsyncClient:
    """A pool of async connections plus the Bedrock client, embedder and model runs use (see
    :class:`farmops_client.client.Client`)."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        bedrock: Any = None,
        embedder: Embedder | str | None = None,
        model: str | None = None,
        owns_pool: bool = False,
        model_threads: int = 64,
        role: str | None = None,
    ):
        self.pool = pool
        #: The database role every transaction acts as (``SET LOCAL ROLE``, first), or ``None``.
        self.role = role
        self.bedrock = bedrock
        self.embedder = embedder_named(embedder, bedrock) if isinstance(embedder, str) else embedder
        self.model = model or core.DEFAULT_MODEL
        self._owns_pool = owns_pool
        #: Shared by this client's sessions: values that do not depend on the member (tool specs).
        self.cache: dict[str, Any] = {}
        #: A Bedrock Guardrail every ``ask()`` of this client's sessions applies (unless it passes its own).
        self.guardrail: Guardrail | None = None
        #: Threads that run the blocking botocore calls (Bedrock, embeddings): asyncio's default
        #: executor has only min(32, CPUs + 4) threads, fewer than a service's chats in flight.
        self.executor = ThreadPoolExecutor(max_workers=model_threads, thread_name_prefix="farmops-bedrock")

    async def offload(self, function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run a blocking call (botocore) in this client's threads; the event loop keeps running."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(function, *args, **kwargs))

    async def close(self) -> None:
        """Close the pool if this client created it, and the model-call threads."""
        if self._owns_pool:
            await self.pool.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        """A pooled connection (pgvector registered), translated errors; no tenant context."""
        try:
            async with self.pool.connection() as conn:
                if conn.adapters.types.get("vector") is None:
                    with db.translated():
                        await register_vector_async(conn)
                yield conn
        except PoolTimeout as exc:
            raise DatabaseUnavailable(f"no database connection available: {exc}") from exc

    @contextlib.asynccontextmanager
    async def tenant(self, farm_id: UUID | str, user_id: str) -> AsyncIterator[AsyncTenantSession]:
        """A session acting as ``user_id`` in ``farm_id``; it holds no connection between its steps."""
        yield AsyncTenantSession(self, farm_id, user_id)

    @contextlib.asynccontextmanager
    async def tenant_from_token(self, token: str) -> AsyncIterator[AsyncTenantSession]:
        """A session as the farm and user a signed identity token names; the database verifies the
        token here and again in every transaction of the session."""
        async with self.connection() as conn, conn.transaction():
            await _local_role(conn, self.role)
            await _send(conn, core.Call("begin_tenant_verified", {"token": token}))
            cur = await _send(
                conn, core.Statement("SELECT farm_id, user_id FROM farmops.tenant_context()", {})
            )
            ctx = (await _rows(cur))[0]
        session = AsyncTenantSession(self, ctx["farm_id"], ctx["user_id"])
        session.token = token
        yield session

    async def create_farm(self, name: str, owner_user_id: str) -> UUID:
        """``farmops.create_farm``: a new farm with ``owner_user_id`` as its owner."""
        return (await self._call("create_farm", name=name, owner_user_id=owner_user_id))[0]["create_farm"]

    async def check_invariants(self, farm_id: UUID | str | None = None) -> list[dict[str, Any]]:
        """``farmops.check_invariants``: violations (empty list = healthy)."""
        return await self._call(
            "check_invariants", farm_id=None if farm_id is None else uuid_arg(farm_id, "farm id")
        )

    async def _call(self, function: str, **kwargs: Any) -> list[dict[str, Any]]:
        async with self.connection() as conn:
            async with conn.transaction():
                await _local_role(conn, self.role)
                cur = await _send(conn, core.Call(function, kwargs))
            return await _rows(cur)


class AsyncTenantSession:
    """One user in one farm, asyncio: each operation one short transaction on a borrowed connection."""

    def __init__(self, client: AsyncClient, farm_id: UUID | str, user_id: str):
        self.client = client
        self.farm_id = uuid_arg(farm_id, "farm id")
        self.user_id = text_arg(user_id, "user id", 256)
        self.embedder = client.embedder
        self.bedrock = client.bedrock
        self.model = client.model
        self.cache = client.cache
        self.guardrail = client.guardrail
        #: An identity token: when set, every transaction verifies it instead of ``begin_tenant``.
        self.token: str | None = None

    # -- transactions ----------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def short_transaction(self) -> AsyncIterator[psycopg.AsyncConnection]:
        """A transaction with the tenant context, pipelined (one round trip), committed at exit."""
        async with self.client.connection() as conn:
            explicit = contextlib.nullcontext() if conn.autocommit else conn.transaction()
            try:
                with db.translated():
                    async with conn.pipeline(), explicit:
                        await _local_role(conn, self.client.role)
                        if self.token is not None:
                            await _send(conn, core.Call("begin_tenant_verified", {"token": self.token}))
                        else:
                            context = {"farm_id": self.farm_id, "user_id": self.user_id}
                            await _send(conn, core.Call("begin_tenant", context))
                        yield conn
            except BaseException:
                if conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
                    with db.translated():
                        await conn.rollback()
                raise

    async def commit(self) -> None:
        """Nothing to do: each operation of an async session is a transaction of its own, committed
        when it returns (kept so that code written for the sync session reads the same)."""

    async def rollback(self) -> None:
        """Nothing to do: an async session has no transaction open between its operations."""

    async def run_steps(self, steps: Sequence[core.Call | core.Statement]) -> list[list[dict[str, Any]]]:
        """Steps in one short transaction: each one's rows."""
        async with self.short_transaction() as conn:
            cursors = [await _send(conn, step) for step in steps]
        return [await _rows(cur) for cur in cursors]

    async def call(self, function: str, casts: dict[str, str] | None = None, /, **kwargs: Any) -> list[dict]:
        """``farmops.<function>`` with named arguments, in its own transaction with the tenant context."""
        return (await self.run_steps([core.Call(function, kwargs, casts)]))[0]

    async def execute(self, query: str | sql.Composable, params: dict[str, Any] | None = None) -> list[dict]:
        """A statement in its own transaction with the tenant context: its rows."""
        return (await self.run_steps([core.Statement(query, params or {})]))[0]

    # -- operations (the sync session's names) ---------------------------------------------------------
    async def lineage(self, run_id: UUID | str) -> dict[str, Any]:
        """``farmops.run_lineage``: one run of this farm as a DAG (RunNotFound for another farm's)."""
        return (await self.call("run_lineage", run_id=uuid_arg(run_id, "run id")))[0]["run_lineage"]

    async def metrics(self) -> list[dict[str, Any]]:
        """``farmops.metrics()``: this farm's metrics (row level security)."""
        return await self.call("metrics")

    async def prometheus_text(self) -> str:
        """This farm's metrics in the Prometheus text format (one transaction)."""
        rows, help_rows = await self.run_steps([core.Call("metrics", {}), core.Call("metric_help", {})])
        return observability.exposition(rows, help_rows)

    async def farm(self) -> dict[str, Any]:
        """The farm row as this member sees it."""
        return (await self.execute("SELECT * FROM farmops.farms WHERE id = %(f)s", {"f": self.farm_id}))[0]

    async def members(self) -> list[dict[str, Any]]:
        """The farm's members."""
        return await self.execute("SELECT * FROM farmops.farm_members ORDER BY user_id")

    async def ledger(self, *, run_id: UUID | str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Ledger rows of the farm (newest last), optionally of one run."""
        run = None if run_id is None else uuid_arg(run_id, "run id")
        return await self.execute(credits.LEDGER, {"run": run, "limit": int_arg(limit, "limit", 1)})

    # -- money (the twins of farmops_client.spend) -------------------------------------------------------
    async def set_budget(
        self,
        period: str,
        limit_micro_usd: int,
        *,
        action: str = "deny",
        feature: str | None = None,
        thresholds: list[int] | None = None,
        time_zone: str = "UTC",
    ) -> dict[str, Any]:
        """``farmops.set_budget`` (owner): the farm's money budget of a period ('day' or 'month')."""
        args: dict[str, Any] = {
            "period": period, "limit_micro_usd": limit_micro_usd, "action": action, "feature": feature,
            "time_zone": time_zone,
        }  # fmt: skip
        if thresholds is not None:
            args["thresholds"] = thresholds
        return (await self.call("set_budget", **args))[0]

    async def drop_budget(self, period: str, *, feature: str | None = None) -> dict[str, Any]:
        """``farmops.drop_budget`` (owner)."""
        return (await self.call("drop_budget", period=period, feature=feature))[0]

    async def budgets(self) -> list[dict[str, Any]]:
        """Each budget of the farm in its current period (``farmops.budget_status``)."""
        return await self.execute("SELECT * FROM farmops.budget_status ORDER BY period, feature")

    async def budget_alerts(self, *, limit: int = 100) -> list[dict[str, Any]]:
        """The farm's fired budget alerts, newest first."""
        return await self.execute(
            "SELECT * FROM farmops.budget_alerts ORDER BY fired_at DESC LIMIT %(n)s",
            {"n": int_arg(limit, "limit", 1)},
        )

    async def usage(self, *, since: timedelta = timedelta(days=30), by: str = "day") -> list[dict[str, Any]]:
        """Spend of the farm over the last ``since``, grouped ``by`` day, feature, model or member."""
        query, params = spend.usage_query(since, by)
        return await self.execute(query, params)

    async def month_to_date(self) -> dict[str, Any] | None:
        """This month's spend, the linear end-of-month projection and the monthly budget."""
        rows = await self.execute("SELECT * FROM farmops.spend_month_to_date")
        return rows[0] if rows else None

    async def record_usage(
        self,
        *,
        feature: str,
        model: str,
        input_tokens: int,
        output_tokens: int = 0,
        run_id: UUID | str | None = None,
    ) -> dict[str, Any]:
        """``farmops.record_usage``: meter a provider call that is not a run's own (an embedding)."""
        tokens = {"input_tokens": input_tokens, "output_tokens": output_tokens}
        rows = await self.call("record_usage", feature=feature, model=model, run_id=run_id, **tokens)
        return rows[0]

    async def rates(self) -> list[dict[str, Any]]:
        """The rate row in force for every model (credits and prices; ``'*'`` is the default)."""
        return await self.execute(spend.RATES_QUERY)

    async def adjust_credits(self, delta: int, reason: str) -> int:
        """``farmops.adjust_credits`` (owner): correct the balance by ``delta``; returns the new balance."""
        rows = await self.call("adjust_credits", farm_id=self.farm_id, delta=delta, reason=reason)
        return rows[0]["adjust_credits"]

    async def credit_statement(self, start: datetime, end: datetime | None = None) -> dict[str, Any]:
        """``farmops.credit_statement`` for [start, end) (end: now)."""
        args: dict[str, Any] = {"from": start}
        if end is not None:
            args["to"] = end
        return (await self.call("credit_statement", **args))[0]

    async def check_invariants(self) -> list[dict[str, Any]]:
        """``farmops.check_invariants`` for this farm (empty list = healthy)."""
        return await self.call("check_invariants", farm_id=self.farm_id)

    async def audit_head(self) -> dict[str, Any]:
        """``farmops.audit_head`` of this farm: ``{"seq", "hash"}`` after sealing what has ended."""
        return (await self.call("audit_head", farm_id=self.farm_id))[0]

    async def verify_audit(self, trusted_head: str | None = None) -> dict[str, Any]:
        """``farmops.verify_audit`` of this farm (``trusted_head``: ``"SEQ:HASH"`` the chain must extend)."""
        seq, digest = parse_trusted_head(trusted_head) if trusted_head is not None else (None, None)
        rows = await self.call("verify_audit", farm_id=self.farm_id, trusted_seq=seq, trusted_hash=digest)
        return rows[0]

    async def audit_log(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest ``limit`` sealed audit entries of this farm, newest first."""
        return await self.execute(AUDIT_LOG_QUERY, {"f": self.farm_id, "limit": int_arg(limit, "limit", 1)})

    async def erase_member_data(self, user_id: str) -> dict[str, Any]:
        """``farmops.erase_member_data`` (farm owner): what was pseudonymised or deleted."""
        return (await self.call("erase_member_data", user_id=user_id))[0]["erase_member_data"]

    async def draft(self, draft_id: UUID | str) -> dict[str, Any] | None:
        """One draft, or ``None`` if not visible."""
        rows = await self.execute(
            "SELECT * FROM farmops.assistant_drafts WHERE id = %(d)s", {"d": uuid_arg(draft_id, "draft id")}
        )
        return rows[0] if rows else None

    async def delete_document(self, document_id: UUID | str) -> None:
        """``farmops.delete_document``."""
        await self.call("delete_document", document_id=uuid_arg(document_id, "document id"))

    async def remember(self, content: str, *, run_id: UUID | str | None = None) -> UUID:
        """Store a durable farm fact and make it retrievable (embedded first, no connection held)."""
        run_id = None if run_id is None else uuid_arg(run_id, "run id")
        content = await self._redacted_for_embedding(content)
        (vector,), tokens = await self._embed_metered([content])
        await self._meter(tokens, "remember", run_id)
        args = {"content": content, "run_id": run_id, "embedding": vector, "model": self.embedder.model}
        return (await self.run_steps([core.Statement(knowledge.STORE_MEMORY, args)]))[0][0]["memory_id"]

    async def grant_credits(self, credits: int, reason: str) -> int:
        """``farmops.grant_credits`` for this farm (owner only); returns the new balance."""
        credits = int_arg(credits, "credits", 1)
        rows = await self.call("grant_credits", farm_id=self.farm_id, credits=credits, reason=reason)
        return rows[0]["grant_credits"]

    async def set_pii_policy(self, keep_kinds: list[str]) -> list[str]:
        """``farmops.set_pii_policy`` (owner): the PII kinds this farm keeps in stored text."""
        rows = await self.call("set_pii_policy", {"keep_kinds": "text[]"}, keep_kinds=list(keep_kinds))
        return rows[0]["set_pii_policy"]

    async def pii_policy(self) -> dict[str, Any]:
        """``farmops.pii_policy``: the kinds this farm keeps, who set them and when."""
        return (await self.call("pii_policy"))[0]

    async def set_guard_rule(
        self, name: str, category: str, stages: list[str], pattern: str, **kw: Any
    ) -> UUID:
        """``farmops.set_guard_rule`` (owner): add or replace one of this farm's guard rules."""
        args = {"name": name, "category": category, "stages": list(stages), "pattern": pattern, **kw}
        return (await self.call("set_guard_rule", {"stages": "text[]"}, **args))[0]["set_guard_rule"]

    async def drop_guard_rule(self, name: str) -> None:
        """``farmops.drop_guard_rule`` (owner)."""
        await self.call("drop_guard_rule", name=name)

    async def allow_guard_match(self, pattern: str, reason: str, **kw: Any) -> UUID:
        """``farmops.allow_guard_match`` (owner): an allow rule for a false positive; its id."""
        return (await self.call("allow_guard_match", pattern=pattern, reason=reason, **kw))[0][
            "allow_guard_match"
        ]

    # spend control (farmops_client.control)
    async def policies(self) -> list[dict[str, Any]]:
        """``farmops.policies()``: the farm's and the package's rules in evaluation order, explained."""
        return await self.call("policies")

    async def set_policy(
        self,
        name: str,
        action: str,
        decision: str,
        *,
        rank: int = 100,
        feature: str | None = None,
        model: str | None = None,
        record_type: str | None = None,
        member_role: str | None = None,
        capability: str | None = None,
        conditions: Sequence[dict[str, Any]] = (),
        masked_kinds: Sequence[str] | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        """``farmops.set_policy`` (owner): create or replace the rule ``name``; returns its row."""
        rows = await self.call(
            "set_policy", name=name, action=action, decision=decision, rank=rank, feature=feature,
            model=model, record_type=record_type, member_role=member_role, capability=capability,
            conditions=Jsonb(list(conditions)),
            masked_kinds=None if masked_kinds is None else list(masked_kinds), description=description,
        )  # fmt: skip
        return rows[0]

    async def drop_policy(self, name: str) -> dict[str, Any]:
        """``farmops.drop_policy`` (owner): remove the rule ``name``; returns it."""
        return (await self.call("drop_policy", name=name))[0]

    async def explain_policy(self, action: str, attributes: dict[str, Any] | None = None) -> dict[str, Any]:
        """``farmops.explain_policy``: the decision for ``action`` with ``attributes`` and its rule."""
        return (await self.call("explain_policy", action=action, attributes=Jsonb(attributes or {})))[0]

    async def set_farm_time_zone(self, time_zone: str) -> str:
        """``farmops.set_farm_time_zone`` (owner): the zone of the rules' hour and weekday."""
        return (await self.call("set_farm_time_zone", time_zone=time_zone))[0]["set_farm_time_zone"]

    async def approve_run(self, run_id: UUID | str) -> dict[str, Any]:
        """``farmops.approve_run`` (owner or manager, not the requester): let a held run start."""
        return (await self.call("approve_run", run_id=uuid_arg(run_id, "run id")))[0]

    async def reject_run(self, run_id: UUID | str, reason: str | None = None) -> dict[str, Any]:
        """``farmops.reject_run`` (owner or manager): refuse a held run; its reservation is refunded."""
        return (await self.call("reject_run", run_id=uuid_arg(run_id, "run id"), reason=reason))[0]

    async def runs_awaiting_approval(self) -> list[dict[str, Any]]:
        """The farm's live runs held by a require_approval rule, oldest first."""
        return await self.execute(
            "SELECT * FROM farmops.ai_runs WHERE approval = 'pending' AND status = 'reserved' "
            "AND expires_at > now() ORDER BY reserved_at, id"
        )

    async def rate_limits(self) -> list[dict[str, Any]]:
        """``farmops.rate_limits()``: the farm's limits and what each admits now."""
        return await self.call("rate_limits")

    async def set_rate_limits(
        self,
        *,
        requests_per_minute: int | None,
        tokens_per_minute: int | None,
        scope: str = "farm",
        user_id: str | None = None,
    ) -> None:
        """``farmops.set_rate_limits`` (owner): ``None`` = no limit."""
        await self.call(
            "set_rate_limits", requests_per_minute=requests_per_minute, tokens_per_minute=tokens_per_minute,
            scope=scope, user_id=user_id,
        )  # fmt: skip

    async def balance(self) -> int:
        """The farm's credit balance."""
        rows = await self.execute(
            "SELECT credit_balance FROM farmops.farms WHERE id = %(f)s", {"f": self.farm_id}
        )
        return rows[0]["credit_balance"]

    async def runs(self, *, limit: int = 50) -> list[dict[str, Any]]:
        """The farm's most recent AI runs."""
        return await self.execute(credits.RUNS, {"limit": int_arg(limit, "limit", 1)})

    async def run(self, run_id: UUID | str) -> dict[str, Any] | None:
        """One run with its ledger legs, retrievals and drafts (``None`` if not visible)."""
        r = {"run": uuid_arg(run_id, "run id"), "limit": 100}
        runs, legs, retrievals, drafts = await self.run_steps(
            [
                core.Statement(credits.RUN, r),
                core.Statement(credits.LEDGER, r),
                core.Statement(credits.RUN_RETRIEVALS, r),
                core.Statement(credits.RUN_DRAFTS, r),
            ]
        )
        if not runs:
            return None
        return {**runs[0], "ledger": legs, "retrievals": retrievals, "drafts": drafts}

    async def drafts(self, *, status: str | None = "pending", limit: int = 100) -> list[dict[str, Any]]:
        """The farm's assistant drafts (by default the pending ones), newest first."""
        return await self.execute(write_path.DRAFTS, {"status": status, "limit": int_arg(limit, "limit", 1)})

    async def confirm_draft(
        self, draft_id: UUID | str, edits: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """``farmops.confirm_draft`` as this (human) member; returns the draft row."""
        draft_id = uuid_arg(draft_id, "draft id")
        return (
            await self.call("confirm_draft", draft_id=draft_id, edits=None if edits is None else Jsonb(edits))
        )[0]

    async def discard_draft(self, draft_id: UUID | str, reason: str | None = None) -> dict[str, Any]:
        """``farmops.discard_draft``; returns the draft row."""
        return (await self.call("discard_draft", draft_id=uuid_arg(draft_id, "draft id"), reason=reason))[0]

    async def set_autonomy(
        self,
        tier: str | None = None,
        auto_categories: list[str] | None = None,
        record_autonomy: dict[str, str] | None = None,
    ) -> None:
        """``farmops.set_autonomy`` (owner only); ``None`` leaves a setting unchanged."""
        await self.call(
            "set_autonomy",
            tier=tier,
            auto_categories=None if auto_categories is None else Jsonb(auto_categories),
            record_autonomy=None if record_autonomy is None else Jsonb(record_autonomy),
        )

    async def add_member(self, user_id: str, role: str) -> None:
        """``farmops.add_member`` to this farm (owner only)."""
        await self.call(
            "add_member", farm_id=self.farm_id, user_id=text_arg(user_id, "user id", 256), role=role
        )

    async def remove_member(self, user_id: str) -> None:
        """``farmops.remove_member`` (owner only): OF002 if ``user_id`` is no member, OF005 the last owner."""
        await self.call("remove_member", farm_id=self.farm_id, user_id=text_arg(user_id, "user id", 256))

    async def set_member_role(self, user_id: str, role: str) -> None:
        """Change an existing member's role (owner only); never adds anyone (:class:`NotAMember`)."""
        user_id = text_arg(user_id, "user id", 256)
        found = await self.execute(
            "SELECT 1 FROM farmops.farm_members WHERE farm_id = %(f)s AND user_id = %(u)s",
            {"f": self.farm_id, "u": user_id},
        )
        if not found:
            raise NotAMember(f"{user_id} is not a member of this farm")
        await self.add_member(user_id, role)

    async def autonomy(self) -> dict[str, Any]:
        """The farm's AI settings and, per record type, the autonomy it resolves to now (``types``)."""
        settings, types = await self.run_steps(
            [
                core.Statement(write_path.AUTONOMY_SETTINGS, {"farm": self.farm_id}),
                core.Statement(write_path.AUTONOMY_TYPES, {}),
            ]
        )
        return {**(settings[0] if settings else {}), "types": types}

    async def set_draft_ttl(self, ttl: timedelta) -> timedelta:
        """``farmops.set_draft_ttl`` (owner only): how long new drafts wait for a human."""
        return (await self.call("set_draft_ttl", ttl=ttl))[0]["set_draft_ttl"]

    async def draft_channel(self) -> str:
        """``farmops.draft_channel()``: the channel to LISTEN on for this farm's new pending drafts."""
        return (await self.call("draft_channel"))[0]["draft_channel"]

    async def recommendations(
        self, *, status: str | None = "pending", limit: int = 100
    ) -> list[dict[str, Any]]:
        """The farm's AI recommendations (by default the pending ones), newest first."""
        return await self.execute(
            write_path.RECOMMENDATIONS, {"status": status, "limit": int_arg(limit, "limit", 1)}
        )

    async def decide_recommendation(
        self, recommendation_id: UUID | str, approve: bool, reason: str | None = None
    ) -> dict[str, Any]:
        """``farmops.decide_recommendation`` as this (human) member; returns the recommendation row."""
        rec = uuid_arg(recommendation_id, "recommendation id")
        return (
            await self.call("decide_recommendation", recommendation_id=rec, approve=approve, reason=reason)
        )[0]

    async def give_feedback(
        self, run_id: UUID | str, thumbs_up: bool, comment: str | None = None
    ) -> dict[str, Any]:
        """``farmops.give_feedback``: this member's thumbs up/down on a run (a second call replaces it)."""
        run = uuid_arg(run_id, "run id")
        return (await self.call("give_feedback", run_id=run, thumbs_up=thumbs_up, comment=comment))[0]

    async def feedback(self, *, run_id: UUID | str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The farm's feedback on runs (optionally one run's), newest first."""
        run = None if run_id is None else uuid_arg(run_id, "run id")
        return await self.execute(write_path.FEEDBACK, {"run": run, "limit": int_arg(limit, "limit", 1)})

    async def evals(self, *, run_id: UUID | str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The farm's eval results (optionally one run's), newest first."""
        run = None if run_id is None else uuid_arg(run_id, "run id")
        return await self.execute(write_path.EVALS, {"run": run, "limit": int_arg(limit, "limit", 1)})

    async def eval_rules(self) -> list[dict[str, Any]]:
        """The installation's eval rules (global; registered by the package owner)."""
        return await self.execute(write_path.EVAL_RULES)

    async def documents(self, *, limit: int = 100) -> list[dict[str, Any]]:
        """The farm's documents (no content: title, size, chunks, model), newest first."""
        return await self.execute(knowledge.DOCUMENTS, {"limit": int_arg(limit, "limit", 1)})

    async def _embed_metered(self, texts: list[str]) -> tuple[list[Vector], int | None]:
        """The vectors and the input tokens the provider reported (``None``: no provider was called)."""
        if self.embedder is None:
            raise NotConfigured("no embedder configured: pass embedder= to farmops_client.aio.connect()")
        return await self.client.offload(knowledge.embed_metered, self.embedder, texts)

    async def _meter(self, tokens: int | None, feature: str, run_id: UUID | None = None) -> None:
        """``farmops.record_usage`` for an embedding call (priced and counted in budgets by the database)."""
        if tokens is not None:
            await self.call("record_usage", model=self.embedder.model, input_tokens=tokens, feature=feature,
                            run_id=run_id)  # fmt: skip

    async def search(
        self, text: str, *, k: int = 4, include_global: bool = True, source_types: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """Embed ``text`` (no connection held meanwhile) and ``farmops.search`` this farm's knowledge."""
        (vector,), tokens = await self._embed_metered([text])
        await self._meter(tokens, "search")
        return await self.call(
            "search",
            {"query": "vector"},
            query=vector,
            model=self.embedder.model,
            k=int_arg(k, "k", 1, 100),
            include_global=include_global,
            source_types=source_types,
        )

    async def _redacted_for_embedding(self, text: str) -> str:
        """:func:`farmops_client.knowledge.redacted_for_embedding`: ``text`` with the PII the farm
        does not keep redacted, before it is embedded (a vector cannot be redacted afterwards)."""
        return (await self.call("redact_pii_for_farm", text=text))[0]["redacted"]

    async def ingest_document(self, title: str, content: str, *, max_chars: int = 1200) -> UUID:
        """Redact, chunk, embed (no connection held meanwhile) and ``farmops.ingest_document``, as
        :func:`farmops_client.knowledge.ingest_document`: the chunks are cut from the redacted text;
        the document goes as given and the database redacts it with the farm's policy."""
        from .knowledge import chunk_text

        clean = await self._redacted_for_embedding(content)
        chunks = chunk_text(clean, max_chars) or [clean]
        vectors, tokens = await self._embed_metered(chunks)
        await self._meter(tokens, "ingest")
        rows = await self.call(
            "ingest_document",
            {"embeddings": "vector[]"},
            title=title,
            content=content,
            chunks=chunks,
            embeddings=vectors,
            model=self.embedder.model,
        )
        return rows[0]["ingest_document"]

    # -- the governed run ------------------------------------------------------------------------------
    async def ask(
        self,
        prompt: str,
        *,
        feature: str = "assistant",
        max_tokens: int = 512,
        model: str | None = None,
        max_input_tokens: int | None = None,
        k: int = 4,
        max_tool_turns: int = 4,
        request_id: str | None = None,
        ttl: str = "15 minutes",
        system: str | Sequence[str] | None = None,
        temperature: float | None = None,
        tools: Sequence[str | Tool] | None = None,
        inference_config: dict[str, Any] | None = None,
        additional_model_request_fields: dict[str, Any] | None = None,
        history: Sequence[dict[str, Any]] | None = None,
        guardrail: Guardrail | None = None,
    ) -> AskResult:
        """:func:`farmops_client.assistant.ask`, awaited (the same options and outcomes)."""
        plan = make_plan(self, prompt, AskOptions.of(locals()))  # the keyword arguments, checked once
        effects = _Effects(self)
        run = core.governed_run(plan, self.cache)
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                effect = run.throw(error) if error is not None else run.send(value)
            except StopIteration as stop:
                return stop.value
            try:
                value, error = await effects(effect), None
            except BaseException as exc:
                value, error = None, exc

    async def ask_stream(
        self,
        prompt: str,
        *,
        feature: str = "assistant",
        max_tokens: int = 512,
        model: str | None = None,
        max_input_tokens: int | None = None,
        k: int = 4,
        max_tool_turns: int = 4,
        request_id: str | None = None,
        ttl: str = "15 minutes",
        system: str | Sequence[str] | None = None,
        temperature: float | None = None,
        tools: Sequence[str | Tool] | None = None,
        inference_config: dict[str, Any] | None = None,
        additional_model_request_fields: dict[str, Any] | None = None,
        history: Sequence[dict[str, Any]] | None = None,
        guardrail: Guardrail | None = None,
        segment_chars: int = streaming.SEGMENT_CHARS,
    ) -> AsyncIterator[TextDelta | ToolOutcome | Finished]:
        """:func:`farmops_client.assistant.ask_stream`, as an async generator (text released in
        screened segments, :mod:`farmops_client.assistant.streaming`)."""
        options = AskOptions.of(locals())  # the keyword arguments, checked once
        guard = streaming.StreamGuard(options.segment_chars)
        plan = make_plan(self, prompt, options, stream=True)
        effects = _Effects(self)
        run = core.governed_run(plan, self.cache)
        value: Any = None
        error: BaseException | None = None
        closed = False
        while True:
            try:
                effect = run.throw(error) if error is not None else run.send(value)
            except StopIteration:
                return
            value, error = None, None
            try:
                if isinstance(effect, core.Emit):
                    if not closed:
                        for event in guard.emitted(effect.event):  # Finished: the screened tail first
                            yield event
                elif isinstance(effect, core.ModelCall) and effect.stream:
                    response = await self.client.offload(self.bedrock.converse_stream, **effect.request)
                    events = response["stream"]
                    iterator = core.stream_events(events)
                    guard.start(effect)
                    try:
                        while (event := await self.client.offload(next, iterator, None)) is not None:
                            if (screen := guard.take(event, closed)) is None:
                                continue
                            if piece := guard.screened((await effects.db(core.Db((screen,))))[0][0]):
                                yield TextDelta(piece)
                    finally:
                        guard.end()
                        events.close()
                    value = effect.assembler.response()
                else:
                    value = await effects(effect)
            except BaseException as exc:
                closed = closed or isinstance(exc, (GeneratorExit, asyncio.CancelledError))
                error = exc


class _Effects:
    """The asyncio executor of a run's effects, for one session."""

    def __init__(self, t: AsyncTenantSession):
        self.t = t

    async def __call__(self, effect: Any) -> Any:
        t = self.t
        if isinstance(effect, core.Db):
            if effect.settle:
                # settling survives a second cancellation: the run settles exactly once either way
                return await asyncio.shield(self.db(effect))
            return await self.db(effect)
        if isinstance(effect, PROVIDER_EFFECTS):  # blocking botocore: in the client's threads
            return await t.client.offload(provider_effect, effect, t.bedrock, t.embedder, t.cache)
        if isinstance(effect, core.RunServiceTool):
            handler: Callable[[dict[str, Any]], Any] = effect.tool.handler
            if inspect.iscoroutinefunction(handler):
                return await handler(effect.payload)
            return await t.client.offload(handler, effect.payload)
        if isinstance(effect, core.Emit):
            return None
        raise TypeError(f"unknown effect {effect!r}")

    async def db(self, effect: core.Db) -> list[list[dict[str, Any]]]:
        t = self.t
        if not effect.context and t.token is None and not t.client.role and len(effect.steps) == 1:
            async with t.client.connection() as conn:
                if conn.autocommit:  # the call is the transaction: one round trip
                    rows = [await _rows(await _send(conn, effect.steps[0]))]
                    db.vouch_clean(conn)  # only farmops' own call ran: no reset round trip on return
                    return rows
        async with t.short_transaction() as conn:
            if not effect.durable:
                await _send(conn, core.LAZY_COMMIT)
            cursors = [await _send(conn, step) for step in effect.steps]
            db.vouch_clean(conn)  # the pipeline's steps only; a failed one leaves the connection idle too
        return [await _rows(cur) for cur in cursors]


async def connect(
    dsn: str | AsyncConnectionPool,
    *,
    bedrock: Any = None,
    embedder: Embedder | str | None = None,
    model: str | None = None,
    min_size: int = 1,
    max_size: int = 8,
    connect_timeout: int = 10,
    role: str | None = None,
    model_threads: int = 64,
) -> AsyncClient:
    """Open an :class:`AsyncClient` on a DSN (an ``AsyncConnectionPool`` is created) or on your own pool.

    Connections are autocommit, without server-side prepared statements (PgBouncer transaction mode),
    and reset when they return to the pool; ``role`` is ``SET LOCAL ROLE`` first in every transaction,
    never a session ``SET ROLE`` (ADR 0026), as the sync client's (:func:`farmops_client.connect`).
    """
    if isinstance(dsn, AsyncConnectionPool):
        return AsyncClient(dsn, bedrock=bedrock, embedder=embedder, model=model, role=role)
    if not dsn:
        raise FarmopsError("connect() needs a DSN or a pool")
    kwargs = {"autocommit": True, "connect_timeout": connect_timeout, "prepare_threshold": None}
    try:  # one connection first, so a bad DSN, password or role fails fast with libpq's reason
        probe = await psycopg.AsyncConnection.connect(dsn, **kwargs)
    except psycopg.Error as exc:
        raise DatabaseUnavailable(
            f"cannot connect to the database: {str(exc).strip().splitlines()[0]}"
        ) from exc
    try:  # the role checked in a transaction of its own (a session SET ROLE would outlive it)
        async with probe.transaction():
            try:
                await _local_role(probe, role)
            except FarmopsError as exc:
                raise FarmopsError(f"the DSN's role may not act as {role}: {exc}") from exc
    finally:
        await probe.close()

    async def configure(conn: psycopg.AsyncConnection) -> None:
        with db.translated():
            await register_vector_async(conn)

    async def reset(conn: psycopg.AsyncConnection) -> None:
        if db.needs_reset(conn):  # not after a governed run's own steps (vouched clean, idle)
            with db.translated():
                await conn.execute(RESET_SESSION)

    pool = AsyncConnectionPool(
        dsn,
        kwargs=kwargs,
        min_size=min_size,
        max_size=max_size,
        configure=configure,
        reset=reset,
        open=False,
        name="farmops-aio",
    )
    await pool.open()
    return AsyncClient(
        pool,
        bedrock=bedrock,
        embedder=embedder,
        model=model,
        owns_pool=True,
        model_threads=model_threads,
        role=role,
    )
