"""One user acting in one farm: the session's transactions, nothing else.

A session holds no connection of its own: it borrows one from its *lender* (the client's pool)
for each transaction and returns it when the transaction ends, so a session waiting on a model
or an embedding call holds no database connection. (A fixed ``psycopg.Connection`` may be given
instead of a lender: then every transaction uses it.)

A :class:`Session`'s statements run in ONE transaction, opened lazily by the first statement
with ``farmops.begin_tenant`` and ended when the session ends: committed without an exception,
rolled back otherwise (or earlier with :meth:`Session.commit` / :meth:`Session.rollback`).
A governed run is different on purpose: it is several short transactions (reserve, retrieve,
each tool call, settle) with network calls in between, taken with
:meth:`Session.short_transaction`, which refuses while the session's own transaction is open
and is pipelined: one round trip each.

The operations (credits, drafts, knowledge, the assistant) are functions of their own modules
that take a session; :class:`farmops_client.client.TenantSession` binds them as methods.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from uuid import UUID

import psycopg

from . import db
from .arguments import text_arg, uuid_arg
from .embeddings import Embedder
from .errors import SessionBusy

#: Lends a connection for one transaction and takes it back at exit (``pool.connection``).
Lender = Callable[[], contextlib.AbstractContextManager[psycopg.Connection]]


class Session:
    """One user in one farm: a lazily opened transaction with the tenant context, and short ones.

    ``embedder``, ``bedrock`` and ``model`` are held for the knowledge and assistant operations,
    which read them from the session; the session itself does not use them.
    """

    def __init__(
        self,
        conn: psycopg.Connection | Lender,
        farm_id: UUID | str,
        user_id: str,
        *,
        embedder: Embedder | None = None,
        bedrock: Any = None,
        model: str | None = None,
        cache: dict[str, Any] | None = None,
        db_role: str | None = None,
    ):
        if isinstance(conn, psycopg.Connection):
            fixed = conn
            self._lend: Lender = lambda: contextlib.nullcontext(fixed)
        else:
            self._lend = conn
        self.farm_id = uuid_arg(farm_id, "farm id")
        self.user_id = text_arg(user_id, "user id", 256)
        self.embedder = embedder
        self.bedrock = bedrock
        self.model = model
        #: Values that do not depend on the member, shared by the sessions of one client (tool specs).
        self.cache: dict[str, Any] = {} if cache is None else cache
        #: The member's role, as ``farmops.begin_tenant`` returned it (``None`` before any statement).
        self.role: str | None = None
        #: An identity token: when set, every transaction verifies it (``farmops.begin_tenant_verified``)
        #: instead of calling ``farmops.begin_tenant``.
        self.token: str | None = None
        #: The database role every transaction of the session acts as (``SET LOCAL ROLE``, first in
        #: the transaction), or ``None`` for the login's own: nothing of it outlives the transaction.
        self.db_role = db_role
        self._tx: psycopg.Transaction | None = None
        self._conn: psycopg.Connection | None = None
        self._loan: contextlib.AbstractContextManager[psycopg.Connection] | None = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._end(exc)

    @property
    def in_transaction(self) -> bool:
        """Whether the session's transaction is open."""
        return self._tx is not None

    @property
    def conn(self) -> psycopg.Connection:
        """The connection of the session's open transaction (opened if needed)."""
        return self.begin()

    def _borrow(self) -> psycopg.Connection:
        loan = self._lend()
        conn = loan.__enter__()
        self._loan, self._conn = loan, conn
        return conn

    def _give_back(self, exc: BaseException | None) -> None:
        loan, self._loan, self._conn = self._loan, None, None
        if loan is not None:
            if exc is None:
                loan.__exit__(None, None, None)
            else:
                loan.__exit__(type(exc), exc, exc.__traceback__)

    def begin(self) -> psycopg.Connection:
        """Open the session's transaction if needed (tenant context set); return its connection."""
        if self._tx is None:
            conn = self._borrow()
            tx = conn.transaction()
            try:
                with db.translated():
                    tx.__enter__()
            except BaseException as exc:
                self._give_back(exc)
                raise
            self._tx = tx
            try:
                self._set_context()
            except BaseException as exc:
                self._end(exc)
                raise
        return self._conn

    def _set_context(self) -> None:
        conn = self._conn
        if self.db_role:
            # The role (transaction-local, so first) and the context in one round trip.
            with db.translated(), conn.pipeline():
                cur = self._send_context(conn)
            with db.translated():
                self.role = next(iter(cur.fetchone().values()))
        elif self.token is not None:
            self.role = db.value(conn, "begin_tenant_verified", token=self.token)
        else:
            self.role = db.value(conn, "begin_tenant", farm_id=self.farm_id, user_id=self.user_id)

    def context_call(self) -> tuple[str, dict[str, Any]]:
        """The tenant context's function and arguments (verified token, or farm and user)."""
        if self.token is not None:
            return "begin_tenant_verified", {"token": self.token}
        return "begin_tenant", {"farm_id": self.farm_id, "user_id": self.user_id}

    def _send_context(self, conn: psycopg.Connection) -> psycopg.Cursor:
        """Queue the role and the tenant context of a pipelined transaction; the context's cursor."""
        if self.db_role:
            db.send_local_role(conn, self.db_role)
        function, kwargs = self.context_call()
        return db.send(conn, function, **kwargs)

    def _end(self, exc: BaseException | None) -> None:
        tx, self._tx = self._tx, None
        if tx is not None:
            try:
                with db.translated():
                    if exc is None:
                        tx.__exit__(None, None, None)
                    else:
                        tx.__exit__(type(exc), exc, exc.__traceback__)
            finally:
                self._give_back(None)

    def commit(self) -> None:
        """Commit the session's transaction now; the next statement opens a new one."""
        self._end(None)

    def rollback(self) -> None:
        """Roll the session's transaction back now; the next statement opens a new one."""
        if self._tx is not None:
            self._end(psycopg.Rollback())

    @contextlib.contextmanager
    def short_transaction(self) -> Iterator[psycopg.Connection]:
        """A separate transaction with the tenant context, committed at exit (used by ``ask``).

        Pipelined: the tenant context and the block's statements reach the server together at the
        end of the block, in ONE round trip, and run as one transaction (on an autocommit
        connection, the statements before a pipeline sync form one implicit transaction: committed
        at the sync, rolled back entirely if one fails). Inside the block, queue statements
        (:func:`farmops_client.db.send`) and read their cursors after it; reading one inside
        costs an extra round trip.
        """
        if self._tx is not None:
            raise SessionBusy("commit or roll back the session's transaction before a governed run")
        with self._lend() as conn:
            # A connection that is not autocommit (a pool of your own) gets explicit BEGIN/COMMIT,
            # which psycopg synchronises: correct, but more round trips.
            explicit = contextlib.nullcontext() if conn.autocommit else conn.transaction()
            try:
                with db.translated(), conn.pipeline(), explicit:
                    self._send_context(conn)
                    yield conn
            except BaseException:
                if conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
                    with db.translated():
                        conn.rollback()
                raise

    @contextlib.contextmanager
    def lent(self) -> Iterator[psycopg.Connection]:
        """A connection for one autocommit call of its own (no tenant context); refused inside the
        session's transaction, like :meth:`short_transaction`."""
        if self._tx is not None:
            raise SessionBusy("commit or roll back the session's transaction before a governed run")
        with self._lend() as conn:
            yield conn

    def execute(self, query, params: Sequence[Any] | Mapping[str, Any] | None = None) -> psycopg.Cursor:
        """Run a statement in the session's transaction (dict rows)."""
        return db.execute(self.begin(), query, params)

    def call(self, function: str, casts: Mapping[str, str] | None = None, /, **kwargs: Any) -> list[dict]:
        """Call ``farmops.<function>`` with named arguments in the session's transaction."""
        return db.call(self.begin(), function, casts, **kwargs)
