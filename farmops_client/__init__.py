"""farmops_client: the thin Python client of the farmops PostgreSQL package.

The database enforces every rule; this package opens tenant-scoped transactions,
calls the SQL functions, talks to Amazon Bedrock, and maps errors to exceptions.

    client = farmops_client.connect(dsn, bedrock=bedrock_runtime_client, embedder="titan")
    with client.tenant(farm_id, user_id) as t:
        result = t.ask("...", feature="assistant", max_tokens=512)

The asyncio twin is :mod:`farmops_client.aio` (same names, ``await``). Every error a service can
see is a :class:`FarmopsError` subclass, exported here.

Layers, each importing only those before it: ``errors`` -> ``db`` -> ``session`` ->
``tenancy``, ``credits``, ``write_path``, ``knowledge``, ``maintenance`` -> ``assistant`` ->
``client`` -> ``aio``, ``cli``.
"""

from .assistant import AskResult, Finished, Outcome, TextDelta, Tool, ToolCall, ToolOutcome
from .client import Client, TenantSession, connect
from .errors import (
    AppendOnly,
    DatabaseUnavailable,
    DimensionMismatch,
    DocumentNotFound,
    DraftNotFound,
    EmbeddedServerMissing,
    EmbeddingModelMismatch,
    ErasureBlockedByLiveRuns,
    FarmopsError,
    ForbiddenForRole,
    HoldableCursorOpen,
    IdempotencyConflict,
    IdentityTokenExpired,
    IdentityTokenInvalid,
    IdentityTokenNotYetValid,
    InsufficientCredits,
    InvalidArgument,
    InvalidPayload,
    InvalidTransition,
    LastOwner,
    LoginNotAllowedHere,
    MemoryNotFound,
    MigrationChanged,
    MigrationError,
    ModelCallFailed,
    NotAMember,
    NotConfigured,
    PgvectorMissing,
    RecommendationNotFound,
    RunAlreadySettled,
    RunExpired,
    RunNotFound,
    RunNotLive,
    SessionBusy,
    SuggestOnly,
    TenantContextMissing,
    UnknownModel,
    UnknownRecordType,
    UntrustedSchema,
    VerifiedIdentityRequired,
)

__all__ = [
    "AppendOnly",
    "AskResult",
    "Client",
    "DatabaseUnavailable",
    "DimensionMismatch",
    "DocumentNotFound",
    "DraftNotFound",
    "EmbeddedServerMissing",
    "EmbeddingModelMismatch",
    "ErasureBlockedByLiveRuns",
    "FarmopsError",
    "Finished",
    "ForbiddenForRole",
    "HoldableCursorOpen",
    "IdempotencyConflict",
    "IdentityTokenExpired",
    "IdentityTokenInvalid",
    "IdentityTokenNotYetValid",
    "InsufficientCredits",
    "InvalidArgument",
    "InvalidPayload",
    "InvalidTransition",
    "LastOwner",
    "LoginNotAllowedHere",
    "MemoryNotFound",
    "MigrationChanged",
    "MigrationError",
    "ModelCallFailed",
    "NotAMember",
    "NotConfigured",
    "Outcome",
    "PgvectorMissing",
    "RecommendationNotFound",
    "RunAlreadySettled",
    "RunExpired",
    "RunNotFound",
    "RunNotLive",
    "SessionBusy",
    "SuggestOnly",
    "TenantContextMissing",
    "TenantSession",
    "TextDelta",
    "Tool",
    "ToolCall",
    "ToolOutcome",
    "UnknownModel",
    "UnknownRecordType",
    "UntrustedSchema",
    "VerifiedIdentityRequired",
    "connect",
]
__version__ = "0.1.0"
