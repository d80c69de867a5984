"""Where the package's SQL files live: inside the wheel, or in the source tree."""

from __future__ import annotations

from pathlib import Path


def sql_dir() -> Path:
    """Return the directory holding ``install.sql``, ``bootstrap.sql`` and ``schema/``.

    A built wheel ships it as ``farmops_client/sql``; an editable install or a source
    checkout uses the repository's top-level ``sql/``.
    """
    packaged = Path(__file__).resolve().parent / "sql"
    if (packaged / "bootstrap.sql").is_file():
        return packaged
    source = Path(__file__).resolve().parent.parent / "sql"
    if (source / "bootstrap.sql").is_file():
        return source
    raise FileNotFoundError("farmops SQL files not found next to farmops_client (broken install?)")
