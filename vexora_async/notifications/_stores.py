"""Where a callback receiver remembers which notifications it handled."""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol, runtime_checkable

from vexora_async._validation import check_count


@runtime_checkable
class NotificationStore(Protocol):
    """Remembers which notifications were handled, by their ``dedup_key``.

    Implement it over your database or Redis to share it between processes
    and keep it across restarts. The receiver calls :meth:`was_handled`
    before the handler and :meth:`mark_handled` after it succeeded.
    """

    async def was_handled(self, key: str) -> bool:
        """Tell whether *key* was marked handled."""
        ...

    async def mark_handled(self, key: str) -> None:
        """Remember that *key* was handled."""
        ...


class MemoryNotificationStore:
    """The default store: this process's memory, bounded.

    Forgets everything on a restart, and is not shared between worker
    processes: a handler must still be idempotent on its own (see
    "Receiving callbacks").

    :param max_entries: The most keys remembered; past it the oldest are
        forgotten first. Default ``100000``. Valid: an ``int`` of at least
        1, else :class:`~vexora_async.InvalidRequestError`. Cost: some 170
        bytes per key (its JSON string and the map's bookkeeping), so
        about 17 MB when full at the default.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        self._max_entries = check_count("max_entries", max_entries, 1)
        self._keys: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    async def was_handled(self, key: str) -> bool:
        """Tell whether *key* was marked handled (and is still remembered)."""
        return key in self._keys

    async def mark_handled(self, key: str) -> None:
        """Remember *key*, forgetting the oldest key when full."""
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self._max_entries:
            self._keys.popitem(last=False)
