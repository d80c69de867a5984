"""Every exception farmops raises: one typed class per documented SQLSTATE, plus the client's own.

This module is the bottom layer of the client and imports nothing of it. The database raises
custom SQLSTATEs (class ``OF``, listed by ``farmops.error_codes()`` in
``sql/functions/00_core/error_codes.sql``). :func:`translate` is the one place that turns a psycopg
error into the matching :class:`FarmopsError` subclass (applied by the choke point
:func:`farmops_client.db.translated`); a test checks that this map and the SQL table agree in both
directions.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg


class FarmopsError(Exception):
    """Base class of every error farmops raises on purpose."""

    sqlstate: str | None = None

    def __init__(self, message: str, *, sqlstate: str | None = None, cause: BaseException | None = None):
        super().__init__(message)
        if sqlstate is not None:
            self.sqlstate = sqlstate
        self.__cause__ = cause


class DatabaseUnavailable(FarmopsError):
    """The database could not be reached (bad DSN, server down, auth refused)."""


class MigrationError(FarmopsError):
    """The migration could not be applied; nothing was changed."""


class NotConfigured(FarmopsError):
    """The client lacks what this operation needs (a Bedrock client, an embedder); chosen at connect()."""


class EmbeddedServerMissing(NotConfigured):
    """The embedded PostgreSQL server is not installed (the optional extra ``farmops[embedded]``)."""


class SessionBusy(FarmopsError):
    """A governed run was started while the tenant session holds an open transaction."""


class ModelCallFailed(FarmopsError):
    """Bedrock refused or failed the call (after botocore's retries); the run was settled as failed."""

    def __init__(
        self,
        message: str,
        *,
        run_id: UUID | None,
        code: str | None,
        settled: dict[str, Any] | None,
        cause: BaseException | None = None,
    ):
        super().__init__(message, cause=cause)
        self.run_id = run_id
        self.code = code
        self.settled = settled


class TenantContextMissing(FarmopsError):
    """OF001: no tenant context; call ``farmops.begin_tenant`` first."""

    sqlstate = "OF001"


class NotAMember(FarmopsError):
    """OF002: the user is not a member of the farm."""

    sqlstate = "OF002"


class ForbiddenForRole(FarmopsError):
    """OF003: the member's role may not do this."""

    sqlstate = "OF003"


class LoginNotAllowedHere(FarmopsError):
    """OF004: the login is not one of this installation's (``farmops.allow_login``)."""

    sqlstate = "OF004"


class LastOwner(FarmopsError):
    """OF005: the last owner of a farm cannot be removed or demoted."""

    sqlstate = "OF005"


class InvalidArgument(FarmopsError):
    """OF006: an argument is NULL, out of range or malformed."""

    sqlstate = "OF006"


class HoldableCursorOpen(FarmopsError):
    """OF007: the session holds a WITH HOLD cursor; close it (or DISCARD ALL) before a tenant context."""

    sqlstate = "OF007"


class IdentityTokenInvalid(FarmopsError):
    """OF021: the identity token is malformed, not HS256, or its signature does not verify."""

    sqlstate = "OF021"


class IdentityTokenExpired(FarmopsError):
    """OF022: the identity token has expired."""

    sqlstate = "OF022"


class IdentityTokenNotYetValid(FarmopsError):
    """OF023: the identity token's nbf or iat is in the future."""

    sqlstate = "OF023"


class VerifiedIdentityRequired(FarmopsError):
    """OF024: the installation requires ``farmops.begin_tenant_verified(token)``."""

    sqlstate = "OF024"


class InsufficientCredits(FarmopsError):
    """OF101: not enough credits left to reserve; nothing was written."""

    sqlstate = "OF101"


class RunNotFound(FarmopsError):
    """OF102: no such AI run in the current farm."""

    sqlstate = "OF102"


class InvalidTransition(FarmopsError):
    """OF103: the state machine does not allow this transition."""

    sqlstate = "OF103"


class RunAlreadySettled(FarmopsError):
    """OF104: the run was already settled with different values."""

    sqlstate = "OF104"


class RunExpired(FarmopsError):
    """OF105: the run's reservation expired and was refunded."""

    sqlstate = "OF105"


class IdempotencyConflict(FarmopsError):
    """OF106: the idempotency key was used before with a different request."""

    sqlstate = "OF106"


class AppendOnly(FarmopsError):
    """OF107: the table is append-only."""

    sqlstate = "OF107"


class UnknownModel(FarmopsError):
    """OF108: no rate for the model and no default rate."""

    sqlstate = "OF108"


class SuggestOnly(FarmopsError):
    """OF201: autonomy is 'suggest' for this record type: the AI may not write it."""

    sqlstate = "OF201"


class InvalidPayload(FarmopsError):
    """OF202: the payload does not match its record type."""

    sqlstate = "OF202"


class UnknownRecordType(FarmopsError):
    """OF203: no such record type is registered."""

    sqlstate = "OF203"


class DraftNotFound(FarmopsError):
    """OF204: no such draft in the current farm."""

    sqlstate = "OF204"


class RunNotLive(FarmopsError):
    """OF205: the run is settled or expired and can no longer propose writes or retrieve."""

    sqlstate = "OF205"


class MemoryNotFound(FarmopsError):
    """OF206: no such memory in the current farm."""

    sqlstate = "OF206"


class RecommendationNotFound(FarmopsError):
    """OF207: no such recommendation in the current farm."""

    sqlstate = "OF207"


class PolicyDenied(FarmopsError):
    """OF401: a policy rule denies the request; ``rule`` is its name (from the error's DETAIL)."""

    sqlstate = "OF401"

    def __init__(self, message: str, *, sqlstate: str | None = None, cause: BaseException | None = None):
        super().__init__(message, sqlstate=sqlstate, cause=cause)
        detail = _detail_of(cause)
        self.rule: str | None = _detail_field(detail, "rule")
        self.source: str | None = _detail_field(detail, "source")


class RateLimited(FarmopsError):
    """OF402: a farm or member rate limit refuses the request now; retry after ``retry_after`` seconds."""

    sqlstate = "OF402"

    def __init__(self, message: str, *, sqlstate: str | None = None, cause: BaseException | None = None):
        super().__init__(message, sqlstate=sqlstate, cause=cause)
        found = _detail_field(_detail_of(cause), "retry_after")
        self.retry_after: int | None = int(found) if found and found.isdigit() else None


class RunAwaitsApproval(FarmopsError):
    """OF403: a policy holds the run for approval; an owner or manager must approve it first."""

    sqlstate = "OF403"

    def __init__(
        self,
        message: str,
        *,
        sqlstate: str | None = None,
        cause: BaseException | None = None,
        run_id: UUID | None = None,
        rule: str | None = None,
    ):
        super().__init__(message, sqlstate=sqlstate, cause=cause)
        self.run_id = run_id
        self.rule = rule


class PolicyNotFound(FarmopsError):
    """OF404: no such policy rule."""

    sqlstate = "OF404"


class OverRateLimitCapacity(FarmopsError):
    """OF405: one request needs more tokens than the per-minute token limit: it can never pass."""

    sqlstate = "OF405"


def _detail_of(cause: BaseException | None) -> str:
    diag = getattr(cause, "diag", None)
    return (getattr(diag, "message_detail", None) or "") if diag is not None else ""


def _detail_field(detail: str, name: str) -> str | None:
    """``name=value`` from an error DETAIL (values end at a space, a colon or a semicolon)."""
    for part in detail.replace(";", " ").split():
        key, sep, found = part.partition("=")
        if sep and key == name:
            return found.rstrip(":")
    return None


class DimensionMismatch(FarmopsError):
    """OF301: the vector does not have the configured embedding dimension."""

    sqlstate = "OF301"


class DocumentNotFound(FarmopsError):
    """OF302: no such document in the current farm."""

    sqlstate = "OF302"


class EmbeddingModelMismatch(FarmopsError):
    """OF303: the vectors come from another embedding model than the farm's index or the global base."""

    sqlstate = "OF303"


class PiiNotRedacted(FarmopsError):
    """OF304: text to be embedded holds personal data the farm does not keep; redact it before embedding."""

    sqlstate = "OF304"


class UnknownPiiKind(FarmopsError):
    """OF305: not a PII kind farmops knows."""

    sqlstate = "OF305"


class InvalidGuardPattern(FarmopsError):
    """OF306: the guard pattern is not a usable PostgreSQL regular expression."""

    sqlstate = "OF306"


class GuardRuleNotFound(FarmopsError):
    """OF307: no such guard rule, category or allow rule in the current farm."""

    sqlstate = "OF307"


class ErasureBlockedByLiveRuns(FarmopsError):
    """OF310: the person (or farm) still has runs in progress; erase after they settle or expire."""

    sqlstate = "OF310"


class ErasureBlockedByProductTable(FarmopsError):
    """OF311: a product record table does not let farmops pseudonymise a person column (the product's
    grants, the column's type, or its own trigger, constraint or policy); nothing was erased."""

    sqlstate = "OF311"


class ModelNotPriced(FarmopsError):
    """OF410: the model has no price and no default price is set (fails closed)."""

    sqlstate = "OF410"


class BudgetExceeded(FarmopsError):
    """OF411: the reservation would take a money budget's spent + held above its limit."""

    sqlstate = "OF411"


class MoneyBoundUnknown(FarmopsError):
    """OF413: a budget applies but the reservation cannot be bounded in money."""

    sqlstate = "OF413"


class BalanceWouldGoNegative(FarmopsError):
    """OF414: the credit adjustment would make the balance negative."""

    sqlstate = "OF414"


class BudgetNotFound(FarmopsError):
    """OF415: no such money budget in the current farm."""

    sqlstate = "OF415"


class RunInProgress(FarmopsError):
    """OF501: the request id names a run that is still being driven; ask again once it has settled."""

    sqlstate = "OF501"


class PgvectorMissing(MigrationError):
    """OF900: the server does not have the pgvector extension."""

    sqlstate = "OF900"


class MigrationChanged(MigrationError):
    """OF901: an applied schema migration file was edited afterwards."""

    sqlstate = "OF901"


class UntrustedSchema(MigrationError):
    """OF902: schema farmops exists but is not owned by farmops_owner; install refused."""

    sqlstate = "OF902"


#: SQLSTATE -> exception class, built from the classes above.
BY_SQLSTATE: dict[str, type[FarmopsError]] = {
    cls.sqlstate: cls
    for cls in list(globals().values())
    if isinstance(cls, type) and issubclass(cls, FarmopsError) and cls.sqlstate
}


def translate(exc: psycopg.Error) -> Exception:
    """Return the typed farmops exception for a psycopg error, or the error itself.

    Connection failures become :class:`DatabaseUnavailable`; documented ``OF`` codes
    become their class, carrying the server's message; anything else is returned as is.
    """
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate in BY_SQLSTATE:
        diag = exc.diag
        message = diag.message_primary or str(exc)
        if diag.message_detail:
            message = f"{message} ({diag.message_detail})"
        return BY_SQLSTATE[sqlstate](message, cause=exc)
    if isinstance(exc, psycopg.OperationalError) and sqlstate is None:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return DatabaseUnavailable(first, cause=exc)
    return exc
