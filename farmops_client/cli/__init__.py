"""The ``farmops`` command line, for operators, DBAs and CI.

One module per command group (``database``, ``tenancy``, ``credits`` ...), each registering its
commands on the root group of ``base``. A new group: a module here that decorates with
``@main.group(cls=FarmopsGroup)`` and a line in the import below.

Exit codes: 0 success; 1 the database refused the operation (a documented SQLSTATE or
a migration problem); 2 bad usage; 3 the database could not be reached.
"""

from __future__ import annotations

from . import (  # noqa: F401  (they register)
    assistant,
    audit,
    autonomy,
    control,
    credits,
    database,
    drafts,
    knowledge,
    metrics,
    operations,
    review,
    runs,
    spend,
    tenancy,
    trust,
)
from .base import EXIT_REFUSED, EXIT_UNAVAILABLE, main, resolve_dsn

__all__ = ["EXIT_REFUSED", "EXIT_UNAVAILABLE", "main", "resolve_dsn"]
