"""farmops_client: the thin Python client of the farmops PostgreSQL package.

The database enforces every rule; this package opens tenant-scoped transactions,
calls the SQL functions, talks to Amazon Bedrock, and maps errors to exceptions.

    client = farmops_client.connect(dsn, bedrock=bedrock_runtime_client)
    with client.tenant(farm_id, user_id) as t:
        result = t.ask("...", feature="assistant", max_tokens=512)
"""

from .client import Client, TenantSession, connect
from .errors import FarmopsError
from .run import AskResult, ModelCallFailed

__all__ = ["AskResult", "Client", "FarmopsError", "ModelCallFailed", "TenantSession", "connect"]
__version__ = "0.1.0"
