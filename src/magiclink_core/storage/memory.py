"""In-process storage and notifier: for tests, the demo and single-process apps that may forget
everything on restart."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from ..domain.models import Record
from ..local_notifier import LocalNotifier
from ..ports import Change, Delete, Insert, R, WriteConflict
from . import _records

MemoryNotifier = LocalNotifier
"""Wake-ups within one process: the in-process notifier, under the name of its storage."""


class MemoryStorage:
    """Records in dicts. ``apply`` runs without awaiting, so it is atomic on the event loop."""

    never_waits = True
    """No call awaits anything: none can outlast a request's storage budget, so the service calls
    it directly, without a deadline or a budget. A subclass whose calls do await (I/O, a lock)
    must set it to False."""

    def __init__(self) -> None:
        self._records: dict[type[Record], dict[str, Record]] = defaultdict(dict)
        self._unique: dict[tuple[type[Record], str], dict[str, str]] = defaultdict(dict)
        # the ids holding each value of a list field, so a list reads its own records only
        self._listed: dict[tuple[type[Record], str], dict[str, set[str]]] = defaultdict(dict)
        self._counters: dict[str, tuple[int, datetime]] = {}

    async def get(self, kind: type[R], id: str) -> R | None:
        record = self._records[kind].get(id)
        return record if isinstance(record, kind) else None

    async def find(self, kind: type[R], field: str, value: str) -> R | None:
        if field not in kind.unique_fields:
            raise ValueError(f"{kind.__name__}.{field} is not a unique field")
        record_id = self._unique[(kind, field)].get(value)
        record = None if record_id is None else self._records[kind].get(record_id)
        return record if isinstance(record, kind) else None

    async def list(self, kind: type[R], field: str, value: str) -> list[R]:
        if field not in kind.list_fields:
            raise ValueError(f"{kind.__name__}.{field} is not a list field")
        holders = self._listed[(kind, field)].get(value)
        if not holders:
            return []
        records = self._records[kind]
        found = [records[rid] for rid in holders]
        found.sort(key=lambda r: (r.created_at, r.id))
        return [r for r in found if isinstance(r, kind)]

    async def apply(self, changes: Sequence[Change]) -> None:
        # check everything against a scratch view first, then write: all or nothing
        records = self._records
        staged: dict[tuple[type[Record], str], Record | None] = {}
        unique = False  # whether a staged record has unique fields to check
        for change in changes:
            if isinstance(change, Delete):
                kind, rid = change.kind, change.id
                key = (kind, rid)
                old = staged[key] if key in staged else records[kind].get(rid)
                if old is None or old.version != change.version:
                    raise WriteConflict(f"{kind.__name__} {rid} changed or is gone")
                staged[key] = None
                continue
            record = change.record
            kind, rid = type(record), record.id
            key = (kind, rid)
            old = staged[key] if key in staged else records[kind].get(rid)
            if isinstance(change, Insert):
                if old is not None:
                    raise WriteConflict(f"{kind.__name__} {rid} exists")
            elif old is None or old.version != record.version - 1:
                raise WriteConflict(f"{kind.__name__} {rid} changed or is gone")
            staged[key] = record
            unique = unique or bool(kind.unique_fields)
        if unique:
            self._check_unique(staged)
        for (kind, rid), new in staged.items():
            kept = records[kind]
            fields, listed = kind.unique_fields, kind.list_fields
            if fields or listed:
                old = kept.get(rid)
                if listed:
                    self._relist(kind, listed, rid, old, new)
            for field in fields:
                before = None if old is None else getattr(old, field)
                after = None if new is None else getattr(new, field)
                if before == after:
                    continue
                index = self._unique[(kind, field)]
                if before is not None and index.get(before) == rid:
                    del index[before]
                if after is not None:
                    index[after] = rid
            if new is None:
                kept.pop(rid, None)
            else:
                kept[rid] = new

    def _relist(
        self,
        kind: type[Record],
        listed: tuple[str, ...],
        rid: str,
        old: Record | None,
        new: Record | None,
    ) -> None:
        for field in listed:
            before = None if old is None else getattr(old, field)
            after = None if new is None else getattr(new, field)
            if before == after:
                continue
            index = self._listed[(kind, field)]
            if before is not None:
                holders = index.get(before)
                if holders is not None:
                    holders.discard(rid)
                    if not holders:
                        del index[before]
            if after is not None:
                holders = index.get(after)
                if holders is None:
                    index[after] = {rid}
                else:
                    holders.add(rid)

    def _check_unique(self, staged: dict[tuple[type[Record], str], Record | None]) -> None:
        claimed: dict[tuple[type[Record], str, str], str] = {}
        for (kind, rid), record in staged.items():
            if record is None:
                continue
            for field in kind.unique_fields:
                value = getattr(record, field)
                if value is None:
                    continue
                owner = self._unique[(kind, field)].get(value)
                owner_moving = (
                    owner is not None
                    and (kind, owner) in staged
                    and ((moved := staged[(kind, owner)]) is None or getattr(moved, field) != value)
                )
                if (owner is not None and owner != rid and not owner_moving) or claimed.get(
                    (kind, field, value), rid
                ) != rid:
                    raise WriteConflict(f"{kind.__name__}.{field} is taken", unique_field=field)
                claimed[(kind, field, value)] = rid

    async def increment(
        self, key: str, *, window: timedelta, now: datetime, amount: int = 1
    ) -> tuple[int, datetime]:
        count, reset_at = _records.counter_as_read(self._counters.get(key), window=window, now=now)
        if amount:
            self._counters[key] = (count + amount, reset_at)
        return count + amount, reset_at

    async def purge(self, now: datetime, *, limit: int = 1000) -> int:
        doomed = [
            Delete(type(r), r.id, r.version)
            for records in self._records.values()
            for r in records.values()
            if r.purge_after is not None and r.purge_after <= now
        ][:limit]
        await self.apply(doomed)
        for key in [k for k, (_, reset_at) in self._counters.items() if reset_at <= now]:
            del self._counters[key]
        return len(doomed)

    async def close(self) -> None:
        return None
