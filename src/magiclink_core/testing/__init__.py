"""Shipped for users: the contract suites every adapter must pass, a fake clock, and a notifier
wrapper to watch a real notifier through.

Subclass a contract and provide the adapter through a fixture::

    import pytest
    from magiclink_core.testing import StorageContract

    class TestMyStorage(StorageContract):
        @pytest.fixture
        async def storage(self):
            store = MyStorage(...)
            yield store
            await store.close()

The tests run under anyio's pytest plugin (installed with anyio); they need no other plugin.
"""

from .clock import FakeClock as FakeClock
from .contract import StorageContract as StorageContract
from .contract import make_record as make_record
from .notifier_contract import NotifierContract as NotifierContract
from .notifier_contract import Outage as Outage
from .notifiers import PassingNotifier as PassingNotifier

__all__ = [
    "FakeClock",
    "NotifierContract",
    "Outage",
    "PassingNotifier",
    "StorageContract",
    "make_record",
]
