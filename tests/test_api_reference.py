"""The API reference describes each parameter on its own, with its true default.

The reference (docs/api.md) is built from the docstrings, in Sphinx field
lists: one ``:param name:`` entry per parameter, which Sphinx renders as
its own item with the type from the signature. These tests hold every
public constructor and method a user calls to that: each parameter has
its entry, in the signature's order, and a parameter with a default says
what the default is, with the value the code really uses.
"""

from __future__ import annotations

import datetime as dt
import inspect
import re
from decimal import Decimal
from typing import Any

import pytest
import vexora_async
from vexora_async import (
    DepositRequest,
    MemoryLedger,
    PayoutRequest,
    RetryPolicy,
    SQLiteLedger,
    VexoraClient,
    new_trade_no,
)
from vexora_async.notifications import (
    MemoryNotificationStore,
    NotificationReceiver,
    RedisNotificationStore,
)
from vexora_async.otel import OpenTelemetryHook
from vexora_async.prometheus import PrometheusHook
from vexora_async.testing import SandboxConfig, serve_sandbox


CLIENT_METHODS = [
    "create_payout",
    "create_payouts",
    "resolve_payout",
    "get_payout",
    "get_balance",
    "create_deposit",
    "get_deposit",
    "ledger_key",
    "ledger_fingerprint",
    "aclose",
]
DOCUMENTED: list[tuple[str, Any]] = [
    ("VexoraClient", VexoraClient),
    *[(f"VexoraClient.{name}", getattr(VexoraClient, name)) for name in CLIENT_METHODS],
    ("RetryPolicy", RetryPolicy),
    ("PayoutRequest", PayoutRequest),
    ("DepositRequest", DepositRequest),
    ("MemoryLedger", MemoryLedger),
    ("SQLiteLedger", SQLiteLedger),
    ("RedisLedger", vexora_async.RedisLedger),
    ("RedisLedger.from_url", vexora_async.RedisLedger.from_url),
    ("PostgresLedger", vexora_async.PostgresLedger),
    ("NotificationReceiver", NotificationReceiver),
    ("MemoryNotificationStore", MemoryNotificationStore),
    ("RedisNotificationStore", RedisNotificationStore),
    ("RedisNotificationStore.from_url", RedisNotificationStore.from_url),
    ("SandboxConfig", SandboxConfig),
    ("serve_sandbox", serve_sandbox),
    ("OpenTelemetryHook", OpenTelemetryHook),
    ("PrometheusHook", PrometheusHook),
    ("new_trade_no", new_trade_no),
    ("sign", vexora_async.sign),
    ("verify", vexora_async.verify),
    ("canonical_string", vexora_async.canonical_string),
    ("parse_notification", vexora_async.notifications.parse_notification),
    ("SQLiteLedger.prune", SQLiteLedger.prune),
    ("PostgresLedger.prune", vexora_async.PostgresLedger.prune),
    ("PostgresLedger.claim_payout", vexora_async.PostgresLedger.claim_payout),
]
_FIELD = re.compile(r"^:param (\w+):(.*?)(?=^:|\Z)", re.MULTILINE | re.DOTALL)


def parameters(obj: Any) -> list[inspect.Parameter]:
    """Return what a caller passes to *obj*: its signature without ``self``."""
    return [p for p in inspect.signature(obj).parameters.values() if p.name != "self"]


def param_fields(obj: Any) -> dict[str, str]:
    """Return *obj*'s ``:param:`` entries, in order, by parameter name."""
    doc = inspect.cleandoc(obj.__doc__ or "")
    return {name: " ".join(text.split()) for name, text in _FIELD.findall(doc)}


def spellings(default: object) -> set[str] | None:
    """Return how a docstring may write *default*, or None if it is not a literal."""
    spelled: set[str] | None = None
    if isinstance(default, bool) or default is None or default == ():
        spelled = {f"``{default}``"}
    elif isinstance(default, (int, float)):
        spelled = {f"``{default}``", f"{default:,}", f"{default:g}"}
    elif isinstance(default, Decimal):
        spelled = {f"{int(default):,}"}
    elif isinstance(default, str):
        spelled = {f'``"{default}"``'}
    elif isinstance(default, dt.timedelta):
        spelled = {f"{default.days} days"}
    return spelled


@pytest.mark.parametrize(("name", "obj"), DOCUMENTED, ids=[n for n, _ in DOCUMENTED])
def test_each_parameter_has_its_own_entry(name: str, obj: Any) -> None:
    """Every parameter is described on its own, in the signature's order."""
    fields = param_fields(obj)
    assert list(fields) == [p.name for p in parameters(obj)], name
    for param, text in fields.items():
        assert len(text) > 10, (name, param, text)


@pytest.mark.parametrize(("name", "obj"), DOCUMENTED, ids=[n for n, _ in DOCUMENTED])
def test_each_default_is_stated_as_the_code_has_it(name: str, obj: Any) -> None:
    """A parameter with a default names it, with the value the code uses."""
    fields = param_fields(obj)
    for param in parameters(obj):
        if param.default is inspect.Parameter.empty:
            continue
        text = fields.get(param.name, "")
        if text.startswith("As the constructor's"):
            continue  # the same default as the entry it names
        assert "Default" in text, (name, param.name)
        allowed = spellings(param.default)
        if allowed is not None:
            assert any(s in text for s in allowed), (name, param.name, allowed, text)


def test_the_client_documents_the_defaults_it_computes() -> None:
    """Defaults the signature cannot show are stated with their real values.

    ``max_connections`` and ``timeout`` are a sentinel in the signature;
    ``claim_lease`` and ``ledger`` are ``None`` there. What the docstring
    says they become is what a client made with no options has.
    """
    client = VexoraClient("1000000001", "secret", "https://gateway.example")
    fields = param_fields(VexoraClient)
    assert client.claim_lease == 2 * 60.0 + 60.0
    assert "twice the deadline plus 60 s (180 s" in fields["claim_lease"]
    assert isinstance(client.ledger, MemoryLedger)
    assert f"{client.ledger.max_entries:,} settled entries" in fields["ledger"]
    timeout = client.http_client.timeout
    shown = (
        f"httpx.Timeout({timeout.read}, connect={timeout.connect}, "
        f"write={timeout.write}, pool={timeout.pool})"
    )
    assert shown in fields["timeout"]
    limits = vexora_async._transports.default_limits(20)
    assert limits.max_connections == 20
    assert (
        '``20`` with ``transport="httpx"``, ``100`` with' in fields["max_connections"]
    )
    assert vexora_async._transports.default_max_connections("aiohttp") == 100
    assert "kept open 30 s when idle" in fields["max_connections"]
    assert limits.keepalive_expiry == 30.0
