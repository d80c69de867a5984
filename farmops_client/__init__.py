"""farmops_client: the thin Python client of the farmops PostgreSQL package.

The database enforces every rule; this package opens tenant-scoped transactions,
calls the SQL functions, talks to Amazon Bedrock, and maps errors to exceptions.
"""

from .errors import FarmopsError

__all__ = ["FarmopsError"]
__version__ = "0.1.0"
