"""A Vexora gateway in your process, for tests, demos and benchmarks.

:class:`FakeGateway` is the gateway's twin: it checks signatures,
timestamps and the merchant number as the real one does, refuses duplicate
``tradeNo`` values, keeps payouts and deposits with their balance effects,
settles them by documented rules, sends signed callbacks with the real
retry schedule, and injects the faults a test scripts (:class:`Fault`).
:class:`SandboxApp` serves it as a plain ASGI app, in process through
``httpx.ASGITransport`` or on a loopback socket (:func:`serve_sandbox`,
:class:`SandboxServer`; these need the ``sandbox`` extra, uvicorn).

The pytest plugin (:mod:`vexora_async.testing.pytest_plugin`) gives a test
suite ready-made fixtures. See "Testing your integration".
"""

from __future__ import annotations

from ._app import SandboxApp
from ._config import (
    CALLBACK_SCHEDULE,
    DEFAULT_SETTLE_DELAY,
    SANDBOX_APP_SECRET,
    SANDBOX_MERCHANT_NO,
    SandboxConfig,
)
from ._faults import DEFAULT_FAULTS, Fault, FaultKind, FaultPlan
from ._gateway import CallbackDelivery, FakeGateway, Reply
from ._recorder import CallbackRecorder, ReceivedCallback
from ._server import SandboxServer, serve_app, serve_sandbox
from ._stats import SandboxStats
from ._transactions import (
    Scenario,
    Transaction,
    TransactionKind,
    default_scenario,
)


__all__ = [
    "CALLBACK_SCHEDULE",
    "DEFAULT_FAULTS",
    "DEFAULT_SETTLE_DELAY",
    "SANDBOX_APP_SECRET",
    "SANDBOX_MERCHANT_NO",
    "CallbackDelivery",
    "CallbackRecorder",
    "FakeGateway",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "ReceivedCallback",
    "Reply",
    "SandboxApp",
    "SandboxConfig",
    "SandboxServer",
    "SandboxStats",
    "Scenario",
    "Transaction",
    "TransactionKind",
    "default_scenario",
    "serve_app",
    "serve_sandbox",
]
