"""A change to storage, as data: what the rules decide to write, and what the service hands to
``Storage.apply`` as one atomic, compare-and-set batch (see ``ports.Storage``)."""

from __future__ import annotations

from dataclasses import dataclass

from .models import Record
from .quick_init import quick_init


@quick_init
@dataclass(frozen=True, slots=True)
class Insert:
    """Create ``record``; fails if its id, or a value of one of its ``unique_fields``, is taken."""

    record: Record


@quick_init
@dataclass(frozen=True, slots=True)
class Update:
    """Replace the stored record of the same id, which must be at ``record.version - 1``.

    Unique fields are re-checked against other records.
    """

    record: Record


@quick_init
@dataclass(frozen=True, slots=True)
class Delete:
    """Remove the record, which must be at ``version``."""

    kind: type[Record]
    id: str
    version: int


Change = Insert | Update | Delete
