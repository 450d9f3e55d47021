"""The memory adapters against the shipped contract suites."""

from collections.abc import AsyncIterator

import pytest

from magiclink_core.ports import Notifier, Storage
from magiclink_core.storage import MemoryNotifier, MemoryStorage
from magiclink_core.testing import NotifierContract, StorageContract

from ._support import CounterReads


class TestMemoryStorage(StorageContract, CounterReads):
    @pytest.fixture
    async def storage(self) -> AsyncIterator[Storage]:
        yield MemoryStorage()


class TestMemoryNotifier(NotifierContract):
    @pytest.fixture
    async def notifiers(self) -> AsyncIterator[tuple[Notifier, Notifier]]:
        notifier = MemoryNotifier()
        yield notifier, notifier
