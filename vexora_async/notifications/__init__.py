"""Callbacks: the gateway's signed notifications, parsed and received.

- :func:`parse_notification` verifies a body and returns a
  :class:`PayoutNotification` or a :class:`DepositNotification` (no I/O);
- :class:`NotificationReceiver` is an ASGI app that verifies each callback,
  runs your handler and answers the gateway what it expects;
- a :class:`NotificationStore` remembers what was handled:
  :class:`MemoryNotificationStore` (the default) or
  :class:`RedisNotificationStore` (the ``redis`` extra, imported only when
  first used).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vexora_async._extras import lazy_names

from ._parse import parse_notification
from ._receiver import NotificationReceiver, ReceiverResponse
from ._records import DepositNotification, Notification, PayoutNotification
from ._stores import MemoryNotificationStore, NotificationStore


if TYPE_CHECKING:
    from ._redis import RedisNotificationStore


__all__ = [
    "DepositNotification",
    "MemoryNotificationStore",
    "Notification",
    "NotificationReceiver",
    "NotificationStore",
    "PayoutNotification",
    "ReceiverResponse",
    "RedisNotificationStore",
    "parse_notification",
]

#: The names behind an extra: name -> (module, extra).
LAZY = {
    "RedisNotificationStore": ("vexora_async.notifications._redis", "redis"),
}


__getattr__ = lazy_names(__name__, LAZY)
