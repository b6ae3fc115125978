"""Bad input gets a clear error before anything is sent (issue 10).

Each case fails with :class:`InvalidRequestError` naming the option, and a
counting transport proves that no request reached the wire.
"""

from __future__ import annotations

import math
import time
import traceback
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from vexora_async import (
    DecodingError,
    DepositRequest,
    InvalidRequestError,
    LedgerError,
    MemoryLedger,
    PayoutOutcomeUnknown,
    PayoutRequest,
    RetryPolicy,
    Secret,
    SQLiteLedger,
    VexoraClient,
    make_converter,
    new_trade_no,
)
from vexora_async._validation import MAX_AMOUNT

from tests.helpers import BASE_URL, MERCHANT_NO, NOTIFY_URL, SECRET, envelope


if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


class CountingTransport(httpx.AsyncBaseTransport):
    """Answers every request with *body* and counts what reached the wire."""

    def __init__(self, body: bytes = b"") -> None:
        self.body = body
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:  # noqa: ARG002
        """Count the request; answer *body*."""
        self.requests += 1
        return httpx.Response(200, content=self.body)


def make_client(transport: CountingTransport, **options: Any) -> VexoraClient:
    """A client that sends through *transport*."""
    return VexoraClient(
        MERCHANT_NO,
        SECRET,
        BASE_URL,
        http_client=httpx.AsyncClient(transport=transport),
        **options,
    )


def payout(**overrides: Any) -> PayoutRequest:
    """A valid payout, with *overrides*."""
    fields: dict[str, Any] = {
        "trade_no": "PO000000000001",
        "amount": 1000,
        "bank_code": "KBZPAY",
        "bank_number": "09791234567",
        "name": "Ko Min Thu",
        "notify_url": NOTIFY_URL,
    } | overrides
    return PayoutRequest(**fields)


BAD_SECONDS: list[object] = [
    math.nan,
    math.inf,
    -math.inf,
    -1,
    -0.5,
    0,
    0.0,
    True,
    False,
    86_400.001,
    10**400,
    "5",
    Decimal(5),
    None,
]
BAD_COUNTS: list[object] = [-1, True, 1.0, math.nan, "2", 10**400, 101, None]


# -- seconds: deadline and timeout, everywhere they are taken ---------------


@pytest.mark.parametrize("value", BAD_SECONDS)
def test_client_deadline_refuses_meaningless_seconds(value: object) -> None:
    """NaN switched the deadline off; 10**400 raised OverflowError."""
    with pytest.raises(InvalidRequestError) as e:
        make_client(CountingTransport(), deadline=value)
    assert e.value.field == "deadline"


@pytest.mark.parametrize("value", [v for v in BAD_SECONDS if v is not None])
def test_client_timeout_refuses_meaningless_seconds(value: object) -> None:
    """A timeout of NaN or a day and a second is refused when the client is built."""
    with pytest.raises(InvalidRequestError) as e:
        make_client(CountingTransport(), timeout=value)
    assert e.value.field is not None
    assert e.value.field.startswith("timeout")


@pytest.mark.parametrize("limit", ["connect", "read", "write", "pool"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -1.0, 0.0, 10**400])
def test_httpx_timeout_values_are_checked(limit: str, value: object) -> None:
    """Each limit inside an httpx.Timeout is checked; None (no limit) is fine."""
    limits: dict[str, Any] = {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}
    limits[limit] = value
    with pytest.raises(InvalidRequestError) as e:
        make_client(CountingTransport(), timeout=httpx.Timeout(**limits))
    assert e.value.field == f"timeout.{limit}"
    make_client(CountingTransport(), timeout=httpx.Timeout(None))


def test_an_injected_clients_own_timeout_is_checked() -> None:
    """With no timeout=, the injected client's timeout applies: it is checked too."""
    http = httpx.AsyncClient(timeout=httpx.Timeout(math.nan))
    with pytest.raises(InvalidRequestError) as e:
        VexoraClient(MERCHANT_NO, SECRET, BASE_URL, http_client=http)
    assert e.value.field == "http_client.timeout.connect"


@pytest.mark.parametrize("option", ["deadline", "timeout"])
@pytest.mark.parametrize("value", [v for v in BAD_SECONDS if v is not None])
async def test_per_call_seconds_are_refused_before_sending(
    option: str, value: object
) -> None:
    """timeout=nan made every create "unknown" although nothing was sent."""
    transport = CountingTransport()
    bad: dict[str, Any] = {option: value}
    async with make_client(transport) as client:
        deposit = DepositRequest(
            trade_no="PI1", amount=100, name="Ko", notify_url=NOTIFY_URL
        )
        for call in (
            client.create_payout(payout(), **bad),
            client.resolve_payout(payout(), **bad),
            client.get_payout("PO1", **bad),
            client.get_balance(**bad),
            client.get_deposit("PI1", **bad),
            client.create_deposit(deposit, **bad),
        ):
            with pytest.raises(InvalidRequestError) as e:
                await call
            assert e.value.field is not None
            assert e.value.field.startswith(option)
    assert transport.requests == 0


@pytest.mark.parametrize("value", [v for v in BAD_COUNTS if v is not None])
async def test_per_call_max_retries_is_checked(value: object) -> None:
    """max_retries=True or 10**400 is refused before anything is sent."""
    transport = CountingTransport()
    async with make_client(transport) as client:
        with pytest.raises(InvalidRequestError) as e:
            await client.create_payout(payout(), max_retries=value)  # type: ignore[arg-type]  # the point
    assert e.value.field == "max_retries"
    assert transport.requests == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        *[("deadline", v) for v in BAD_SECONDS],
        *[
            (f, v)
            for f in ("backoff_initial", "backoff_max", "retry_after_max")
            for v in [math.nan, math.inf, -1, True, 86_401, 10**400, "1", None]
        ],
        *[("max_retries", v) for v in BAD_COUNTS],
        *[("max_reconcile_queries", v) for v in [*BAD_COUNTS, 0]],
        *[
            (f, v)
            for f in ("reconcile", "resubmit", "verify_rejections", "adopt_unchecked")
            for v in [0, 1, "no", None]
        ],
    ],
)
def test_retry_policy_refuses_with_our_error(field: str, value: object) -> None:
    """No attrs ValueError/TypeError leaks: ours, naming the field."""
    bad: dict[str, Any] = {field: value}
    with pytest.raises(InvalidRequestError) as e:
        RetryPolicy(**bad)
    assert e.value.field == field
    assert isinstance(e.value, ValueError)


def test_retry_policy_limits_that_make_sense_are_accepted() -> None:
    """Zero backoff, a day's deadline, 100 retries and ints for floats pass."""
    policy = RetryPolicy(
        max_retries=100,
        deadline=86_400,
        backoff_initial=0,
        backoff_max=0,
        retry_after_max=0,
        max_reconcile_queries=100,
    )
    assert policy.backoff(policy.max_retries) == 0


@pytest.mark.parametrize(
    ("option", "value"),
    [
        *[("max_retries", v) for v in BAD_COUNTS],
        *[("max_connections", v) for v in [*BAD_COUNTS[:-2], None, 0, 10_001]],
        ("retry", {"max_retries": 1}),
        ("ledger", {}),
        ("ledger", "sqlite.db"),
        ("clock", 1719876543210),
        ("middleware", "not a list"),
        ("middleware", [1]),
        ("middleware", None),
        ("http_client", httpx.Client()),
    ],
)
def test_client_options_of_the_wrong_kind(option: str, value: object) -> None:
    """Each wrong option is named; none waits for the first payout to fail."""
    bad: dict[str, Any] = {option: value}
    with pytest.raises(InvalidRequestError) as e:
        VexoraClient(MERCHANT_NO, SECRET, BASE_URL, **bad)
    assert e.value.field == option


async def test_batch_concurrency_is_bounded() -> None:
    """concurrency=10**9 would start a billion workers; refused at once."""
    async with make_client(CountingTransport()) as client:
        for value in (0, True, 10**9, "5"):
            with pytest.raises(InvalidRequestError) as e:
                client.create_payouts([], concurrency=value)  # type: ignore[arg-type]  # the point
            assert e.value.field == "concurrency"
        with pytest.raises(InvalidRequestError) as e:
            client.create_payouts([], on_progress="print")  # type: ignore[arg-type]  # the point
        assert e.value.field == "on_progress"


@pytest.mark.parametrize("value", [["integer"], {}, None, 3, "INTEGER"])
def test_make_converter_refuses_any_other_format(value: object) -> None:
    """A list was hashed: TypeError: unhashable type."""
    with pytest.raises(InvalidRequestError) as e:
        make_converter(value)  # type: ignore[arg-type]  # the point
    assert e.value.field == "amount_format"


@pytest.mark.parametrize("prefix", [3, None, b"PO", "P O", "P" * 41, "\x00"])
def test_new_trade_no_refuses_a_prefix_that_cannot_make_a_trade_no(
    prefix: object,
) -> None:
    """A prefix of 41 characters or with a space made a tradeNo no payout takes."""
    with pytest.raises(InvalidRequestError) as e:
        new_trade_no(prefix)  # type: ignore[arg-type]  # the point
    assert e.value.field == "prefix"
    assert len(new_trade_no("P" * 40)) == 64


# -- amounts ------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        Decimal("1e1000000"),
        Decimal("-1e1000000"),
        Decimal("1e-1000000"),
        Decimal("1e999999999999999999"),
        10**100_000,
        -(10**100_000),
        MAX_AMOUNT + 1,
        Decimal(MAX_AMOUNT + 1),
        Decimal("100." + "0" * 16),
    ],
    ids=lambda v: f"{type(v).__name__}-{len(str(v)) if type(v) is Decimal else '?'}",
)
def test_absurd_amounts_are_refused_at_once(value: object) -> None:
    """Decimal("1e1000000") blocked the event loop 39.5 s in the constructor."""
    started = time.perf_counter()
    with pytest.raises(InvalidRequestError) as e:
        payout(amount=value)
    assert e.value.field == "amount"
    with pytest.raises(InvalidRequestError) as e:
        DepositRequest(trade_no="PI1", amount=value, name="Ko", notify_url=NOTIFY_URL)
    assert e.value.field == "amount"
    assert time.perf_counter() - started < 0.5


def test_the_largest_amount_is_15_digits() -> None:
    """999,999,999,999,999 kyat passes exactly; as the fake gateway's regex."""
    assert payout(amount=MAX_AMOUNT).amount == MAX_AMOUNT
    assert payout(amount=Decimal("999999999999999.00")).amount == MAX_AMOUNT


@pytest.mark.parametrize(
    "amount",
    [
        '"1e999999"',
        "1e999999",
        '"' + "9" * 100_000 + '"',
        "9" * 4000,
        "1" + "0" * 19,
        '"1e-30"',
        "1." + "0" * 100_000 + "1",
    ],
    ids=["str-exp", "num-exp", "str-100k", "int-4000", "int-20", "tiny", "frac-100k"],
)
async def test_absurd_amounts_in_answers_are_decoding_errors(amount: str) -> None:
    """A hostile amount neither stalls nor raises a foreign exception."""
    data = '{"tradeNo":"PO1","status":"0015","orderAmount":' + amount + ',"amount":"1"}'
    body = ('{"code":"0000","msg":"success","data":' + data + "}").encode()
    transport = CountingTransport(body)
    started = time.perf_counter()
    async with make_client(transport, max_retries=0) as client:
        with pytest.raises(DecodingError):
            await client.get_payout("PO1")
        balance = body.replace(b'"orderAmount"', b'"availableAmount"')
        transport.body = balance
        with pytest.raises(DecodingError):
            await client.get_balance()
        transport.body = body.replace(b'"orderAmount"', b'"amount2"').replace(
            b'"amount":"1"', b'"amount":' + amount.encode()
        )
        with pytest.raises(PayoutOutcomeUnknown):
            await client.create_payout(payout(), deadline=2)
    assert time.perf_counter() - started < 5


def test_a_long_digit_timestamp_in_an_answer_is_ignored() -> None:
    """int() of 5,000 digits raises ValueError on 3.11+: read as no timestamp."""
    from vexora_async._converter import WireCodec

    body = envelope({"tradeNo": "PO1"}) | {"timestamp": "1" * 5000}
    import json

    assert (
        WireCodec.create().decode_envelope(json.dumps(body).encode()).timestamp is None
    )


# -- base_url -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://user:pass@sandbox-api.vexora.com/myanmar",
        "https://user@sandbox-api.vexora.com/myanmar",
        "https://:pass@sandbox-api.vexora.com",
        "https://sandbox-api.vexora.com/my anmar",
        "https://sandbox-api.vexora.com/myanmar\n",
        " https://sandbox-api.vexora.com",
        "https://sandbox-api.vexora.com/\x00",
        "https://sandbox-api.vexora.com/\x7f",
        "https://sandbox\u00a0api.vexora.com",
        "https://sandbox-api.vexora.com/\u2028",
        "https://sandbox-api.vexora.com/\ud800",
        "https://sandbox-api.vexora.com/?",
        "https://sandbox-api.vexora.com/#",
        "https://[::1/x",
        "https://host:99999",
        "https://" + "a" * 3000 + ".com",
    ],
)
def test_base_url_refused_with_our_error(url: str) -> None:
    """httpx.InvalidURL escaped; credentials showed in repr(client)."""
    with pytest.raises(InvalidRequestError) as e:
        VexoraClient(MERCHANT_NO, SECRET, url)
    assert e.value.field == "base_url"
    assert url not in str(e.value)
    assert "user" not in str(e.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://b\u00fccher.example/myanmar",
        "https://[2001:db8::1]:8443/mm",
        "http://[::1]:8090/",
        "https://sandbox-api.vexora.com/my%20anmar",
    ],
)
def test_base_urls_that_are_fine_still_pass(url: str) -> None:
    """IDN hosts, IPv6 literals and percent-escapes are not credentials."""
    assert VexoraClient(MERCHANT_NO, SECRET, url).base_url == url.rstrip("/")


def test_repr_of_the_client_shows_no_credentials() -> None:
    """The repr shows the base URL, which can no longer hold credentials."""
    client = VexoraClient(MERCHANT_NO, SECRET, "https://sandbox-api.vexora.com/mm/")
    assert repr(client) == (
        "VexoraClient(merchant_no='1000000001', "
        "base_url='https://sandbox-api.vexora.com/mm')"
    )
    assert SECRET not in repr(client)


# -- the app secret ---------------------------------------------------------------


def _sdk_frame_locals(exc: BaseException) -> Iterator[tuple[str, str, object]]:
    """The locals of every frame the exception passed, but the test's own."""
    assert exc.__traceback__ is not None
    for frame, _ in traceback.walk_tb(exc.__traceback__.tb_next):
        for name, value in frame.f_locals.items():
            yield frame.f_code.co_name, name, value


def _holds(value: object, secret: str) -> bool:
    return value == secret or (isinstance(value, str) and secret in value)


@pytest.mark.parametrize("wrap", [False, True])
@pytest.mark.parametrize(
    ("secret", "base_url"),
    [
        (SECRET, "ftp://sandbox"),  # the secret is fine; another option fails
        ("bad secret ", BASE_URL),  # the secret itself is refused
        ("\uff53\uff45\uff43\uff52\uff45\uff54", BASE_URL),  # not ASCII
    ],
)
def test_no_frame_of_init_holds_the_plain_secret(
    wrap: bool, secret: str, base_url: str
) -> None:
    """Error reporters record frame locals: the SDK's frames hold a wrapper."""
    app_secret: object = Secret(secret) if wrap else secret
    try:
        VexoraClient(MERCHANT_NO, app_secret, base_url)  # type: ignore[arg-type]  # either
    except InvalidRequestError as exc:
        leaks = [
            (where, name)
            for where, name, value in _sdk_frame_locals(exc)
            if _holds(value, secret)
        ]
        assert leaks == []
        assert secret not in str(exc)
        exc.__traceback__ = exc.__traceback__.tb_next if exc.__traceback__ else None
        rendered = "".join(
            traceback.TracebackException.from_exception(
                exc, capture_locals=True
            ).format()
        )
        assert secret not in rendered
    else:  # pragma: no cover - the case must fail
        pytest.fail("the client was built")


async def test_a_secret_wrapper_signs_like_the_plain_string() -> None:
    """Secret(...) and the str make the same requests; repr stays masked."""
    bodies: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return httpx.Response(200, json=envelope({"availableAmount": "5"}))

    for app_secret in (SECRET, Secret(SECRET)):
        async with VexoraClient(
            MERCHANT_NO,
            app_secret,
            BASE_URL,
            clock=lambda: 1,
            http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        ) as client:
            await client.get_balance()
    assert bodies[0] == bodies[1]
    wrapped = Secret(SECRET)
    assert repr(wrapped) == str(wrapped) == f"{wrapped}" == "<secret>"
    assert wrapped.value == SECRET


@pytest.mark.parametrize("value", [None, 3, b"secret", "", Secret(3)])  # type: ignore[arg-type]  # the point
def test_a_secret_of_the_wrong_type_is_named(value: object) -> None:
    """The wrapper's content is checked like the plain string."""
    with pytest.raises(InvalidRequestError) as e:
        VexoraClient(MERCHANT_NO, value, BASE_URL)  # type: ignore[arg-type]  # the point
    assert e.value.field == "app_secret"


# -- ledgers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"max_entries": "5"}, "max_entries"),
        ({"max_entries": 0}, "max_entries"),
        ({"max_entries": True}, "max_entries"),
        ({"max_entries": 5.0}, "max_entries"),
        ({"max_entries": 10**400}, "max_entries"),
        ({"clock": 5}, "clock"),
    ],
)
def test_memory_ledger_options(options: dict[str, Any], field: str) -> None:
    """MemoryLedger(max_entries="5") raised a bare TypeError at "<"."""
    with pytest.raises(InvalidRequestError) as e:
        MemoryLedger(**options)
    assert e.value.field == field


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"path": 3}, "path"),
        ({"path": None}, "path"),
        ({"path": b"ledger.db"}, "path"),
        ({"path": ""}, "path"),
        ({"path": "led\x00ger.db"}, "path"),
        ({"path": ":memory:", "busy_timeout": math.nan}, "busy_timeout"),
        ({"path": ":memory:", "busy_timeout": -1}, "busy_timeout"),
        ({"path": ":memory:", "busy_timeout": "30"}, "busy_timeout"),
        ({"path": ":memory:", "clock": "now"}, "clock"),
    ],
)
def test_sqlite_ledger_options(options: dict[str, Any], field: str) -> None:
    """SQLiteLedger(path=3) raised sqlite3's TypeError."""
    with pytest.raises(InvalidRequestError) as e:
        SQLiteLedger(**options)
    assert e.value.field == field


def test_an_unopenable_sqlite_ledger_is_a_ledger_error(tmp_path: Path) -> None:
    """A missing directory is sqlite3.OperationalError no more."""
    with pytest.raises(LedgerError, match="cannot open the SQLite ledger"):
        SQLiteLedger(tmp_path / "missing" / "ledger.db")
