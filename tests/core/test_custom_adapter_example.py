"""The worked example of docs/storage.md: a storage adapter of your own, proved with the shipped
contract suite. The doc quotes this file; a test below keeps the two the same."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import anyio
import pytest

from magiclink_core.domain.models import RECORD_TYPES, Record
from magiclink_core.ports import Change, Delete, Insert, R, Storage, WriteConflict
from magiclink_core.testing import StorageContract


# --8<-- [start:adapter]
class JsonDictStorage:
    """Records as JSON text in one dict, the way a key-value store would hold them.
    Simple rather than fast: lookups scan, and each write copies the dict."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}  # "table:id" -> the record as JSON
        self.counters: dict[str, tuple[int, datetime]] = {}
        self.lock = anyio.Lock()  # one writer at a time

    def _records(self, data: dict[str, str], kind: type[R]) -> list[R]:
        prefix = f"{kind.table}:"
        return [kind.model_validate_json(v) for k, v in data.items() if k.startswith(prefix)]

    async def get(self, kind: type[R], id: str) -> R | None:
        text = self.data.get(f"{kind.table}:{id}")
        return None if text is None else kind.model_validate_json(text)

    async def find(self, kind: type[R], field: str, value: str) -> R | None:
        assert field in kind.unique_fields
        found = [r for r in self._records(self.data, kind) if getattr(r, field) == value]
        return found[0] if found else None

    async def list(self, kind: type[R], field: str, value: str) -> list[R]:
        assert field in kind.list_fields
        found = [r for r in self._records(self.data, kind) if getattr(r, field) == value]
        return sorted(found, key=lambda r: (r.created_at, r.id))

    async def apply(self, changes: Sequence[Change]) -> None:
        async with self.lock:
            staged = dict(self.data)  # change a copy: all or nothing
            for change in changes:
                if isinstance(change, Delete):
                    kind, id, expected = change.kind, change.id, change.version
                else:
                    kind, id = type(change.record), change.record.id
                    expected = None if isinstance(change, Insert) else change.record.version - 1
                key = f"{kind.table}:{id}"
                current = staged.get(key)
                version = None if current is None else kind.model_validate_json(current).version
                if version != expected:  # compare-and-set: the version must not have moved
                    raise WriteConflict(f"{kind.__name__} {id} exists, changed or is gone")
                if isinstance(change, Delete):
                    del staged[key]
                else:
                    staged[key] = change.record.model_dump_json()
            for kind in {c.kind if isinstance(c, Delete) else type(c.record) for c in changes}:
                self._check_unique(staged, kind)
            self.data = staged

    def _check_unique(self, data: dict[str, str], kind: type[Record]) -> None:
        for field in kind.unique_fields:
            values = [getattr(r, field) for r in self._records(data, kind)]
            taken = [v for v in values if v is not None]
            if len(taken) != len(set(taken)):
                raise WriteConflict(f"{kind.__name__}.{field} is taken", unique_field=field)

    async def increment(
        self, key: str, *, window: timedelta, now: datetime, amount: int = 1
    ) -> tuple[int, datetime]:
        async with self.lock:
            count, reset_at = self.counters.get(key, (0, now + window))
            if now >= reset_at:
                count, reset_at = 0, now + window
            self.counters[key] = (count + amount, reset_at)
            return count + amount, reset_at

    async def purge(self, now: datetime, *, limit: int = 1000) -> int:
        kinds = {kind.table: kind for kind in RECORD_TYPES}
        async with self.lock:
            due = []
            for key, text in self.data.items():
                record = kinds[key.split(":")[0]].model_validate_json(text)
                if record.purge_after is not None and record.purge_after <= now:
                    due.append(key)
            for key in due[:limit]:
                del self.data[key]
            return len(due[:limit])

    async def close(self) -> None:
        pass


class TestJsonDictStorage(StorageContract):
    @pytest.fixture
    async def storage(self) -> AsyncIterator[Storage]:
        store = JsonDictStorage()
        yield store
        await store.close()


# --8<-- [end:adapter]


def test_the_docs_quote_this_example() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "storage.md").read_text()
    source = inspect.getsource(inspect.getmodule(JsonDictStorage))  # type: ignore[arg-type]
    example = source.split("# --8<-- [start:adapter]\n")[1].split("# --8<-- [end:adapter]")[0]
    assert example.strip() in doc, "docs/storage.md no longer quotes the worked example"
