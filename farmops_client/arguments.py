"""Arguments checked in the client before any SQL: a bad id or number is an :class:`InvalidArgument`.

The database checks every argument again (it trusts no client); checking here first means a
service sees a typed :class:`~farmops_client.errors.FarmopsError` (OF006, as the database would
say) instead of a cast error from PostgreSQL or a ``ValueError`` from Python.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from .errors import InvalidArgument

#: PostgreSQL ``integer``.
INT_MAX = 2_147_483_647


def uuid_arg(value: Any, what: str) -> UUID:
    """``value`` as a UUID (a UUID or its text); else :class:`InvalidArgument`."""
    if isinstance(value, UUID):
        return value
    if isinstance(value, str) and len(value) <= 64:
        try:
            return UUID(value.strip())
        except ValueError:
            pass
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    raise InvalidArgument(f"{what} must be a UUID, not {shown}")


def optional_uuid_arg(value: Any, what: str) -> UUID | None:
    """:func:`uuid_arg`, or ``None``."""
    return None if value is None else uuid_arg(value, what)


def int_arg(value: Any, what: str, low: int = 0, high: int = INT_MAX) -> int:
    """``value`` as an int within ``[low, high]`` (bools, floats refused); else :class:`InvalidArgument`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{what} must be a whole number, not {type(value).__name__}")
    if not low <= value <= high:
        raise InvalidArgument(f"{what} must be between {low} and {high}, not {value}")
    return value


def text_arg(value: Any, what: str, max_chars: int, *, blank_ok: bool = False) -> str:
    """``value`` as a string of at most ``max_chars`` characters, without NUL (and not blank)."""
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be text, not {type(value).__name__}")
    if "\x00" in value:
        raise InvalidArgument(f"{what} must not contain NUL characters")
    if not blank_ok and not value.strip():
        raise InvalidArgument(f"{what} must not be blank")
    if len(value) > max_chars:
        raise InvalidArgument(f"{what} is longer than {max_chars} characters")
    return value
