"""What every storage adapter knows about record kinds, whatever its backend: which kinds there
are (by table name) and which fields a lookup may name."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache

from ..domain.models import RECORD_TYPES, Record


@cache
def kinds_by_table() -> dict[str, type[Record]]:
    """Every record kind, by its table (or key space) name."""
    return {kind.table: kind for kind in RECORD_TYPES}


def counter_as_read(
    stored: tuple[int, datetime] | None, *, window: timedelta, now: datetime
) -> tuple[int, datetime]:
    """What ``increment(amount=0)`` answers for a counter read as ``stored`` (count, reset
    time; None when there is none): nothing counted yet, or a window that has passed, reads as
    zero until ``now + window``. A read writes nothing: the window starts at the first count."""
    if stored is None or stored[1] <= now:
        return 0, now + window
    return stored


def check_field(kind: type[Record], field: str, allowed: tuple[str, ...], what: str) -> None:
    """Refuse a lookup by a field ``kind`` does not declare in ``allowed`` (its
    ``unique_fields`` or ``list_fields``): adapters put field names in SQL text and key names
    only after this check.

    :raises ValueError: ``field`` is not one of ``allowed``.
    """
    if field not in allowed:
        raise ValueError(f"{kind.__name__}.{field} is not a {what} field")
