"""farmops_client: the thin Python client of the farmops PostgreSQL package.

The database enforces every rule; this package opens tenant-scoped transactions,
calls the SQL functions, talks to Amazon Bedrock, and maps errors to exceptions.

    client = farmops_client.connect(dsn, bedrock=bedrock_runtime_client, embedder="titan")
    with client.tenant(farm_id, user_id) as t:
        result = t.ask("...", feature="assistant", max_tokens=512)

Layers, each importing only those before it: ``errors`` -> ``db`` -> ``session`` ->
``tenancy``, ``credits``, ``write_path``, ``knowledge``, ``maintenance`` -> ``assistant`` ->
``client`` -> ``cli``.
"""

from .assistant import AskResult
from .client import Client, TenantSession, connect
from .errors import FarmopsError, ModelCallFailed, NotConfigured, SessionBusy

__all__ = [
    "AskResult",
    "Client",
    "FarmopsError",
    "ModelCallFailed",
    "NotConfigured",
    "SessionBusy",
    "TenantSession",
    "connect",
]
__version__ = "0.1.0"
