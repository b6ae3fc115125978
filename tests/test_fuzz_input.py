"""A fuzz campaign: no foreign exception, nothing sent for invalid input.

Hypothesis throws hostile values at every constructor, every call's options
and every call's answers. Each example ends in a result or a
:class:`VexoraError`; anything else is a *foreign* exception and fails the
test at once (hypothesis then shrinks it). A counting transport proves that
no request reached the wire for input the SDK refused. The figures are kept
in :data:`FIGURES` and checked (and printed, with ``-s``) by the last test.

Bounded for the normal suite: a few hundred examples per target, well
under a minute together.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vexora_async import (
    DepositRequest,
    InvalidRequestError,
    MemoryLedger,
    PayoutRequest,
    RetryPolicy,
    Secret,
    SQLiteLedger,
    VexoraClient,
    VexoraError,
    make_converter,
    new_trade_no,
    parse_notification,
    sign,
)
from vexora_async._validation import check_notification_options

from tests.helpers import BASE_URL, MERCHANT_NO, NOTIFY_URL, SECRET


if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


# Judged by the clock too (no example may stall for STALL seconds): run
# alone, not beside other tests on the same cores (noxfile: campaigns).
pytestmark = pytest.mark.campaign

#: examples, refused (a VexoraError), accepted, foreign, wire_invalid,
#: slowest (ms): per target and in total.
FIGURES: Counter[str] = Counter()
SLOWEST: dict[str, float] = {}
#: No constructor or refusal may take longer (Decimal("1e1000000") took 39 s).
STALL = 2.0
#: False only to measure an older SDK: count the failures instead of failing.
STRICT = True

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


def _record(target: str, outcome: str, started: float) -> None:
    elapsed = time.perf_counter() - started
    FIGURES[f"{target}:examples"] += 1
    FIGURES[f"{target}:{outcome}"] += 1
    SLOWEST[target] = max(SLOWEST.get(target, 0.0), elapsed)
    if elapsed >= STALL:
        FIGURES[f"{target}:stalled"] += 1
        assert not STRICT, f"{target} took {elapsed:.2f} s"


def _foreign(target: str, exc: BaseException) -> None:
    FIGURES[f"{target}:examples"] += 1
    FIGURES[f"{target}:foreign"] += 1
    if STRICT:
        msg = f"foreign {type(exc).__name__} from {target}: {exc!r:.300}"
        raise AssertionError(msg) from exc


def attempt(target: str, build: Callable[[], object]) -> object | None:
    """Run *build*; return its result, or None when it raised a VexoraError."""
    started = time.perf_counter()
    try:
        result = build()
    except VexoraError:
        _record(target, "refused", started)
        return None
    except Exception as exc:  # noqa: BLE001 - what the campaign counts
        _foreign(target, exc)
        return None
    _record(target, "accepted", started)
    return result


async def attempt_async(target: str, call: Awaitable[object]) -> BaseException | None:
    """Await *call*; return what it raised (a VexoraError), or None."""
    started = time.perf_counter()
    try:
        await call
    except VexoraError as exc:
        _record(target, "refused", started)
        return exc
    except Exception as exc:  # noqa: BLE001 - what the campaign counts
        _foreign(target, exc)
        return exc
    _record(target, "accepted", started)
    return None


# -- hostile values -----------------------------------------------------------

WEIRD = st.one_of(
    st.none(),
    st.booleans(),
    st.binary(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
    st.just(object()),
    st.just(Decimal("sNaN")),
)
SECONDS = st.one_of(
    st.floats(min_value=0.001, max_value=120),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.sampled_from([0, -0.0, 86_400, 86_400.5, 10**400, 2**63, 1e308, 5e-324]),
    st.decimals(allow_nan=True),
    st.text(max_size=4),
    WEIRD,
)
COUNTS = st.one_of(
    st.integers(min_value=-3, max_value=120),
    st.sampled_from([10**400, 2**63, 10_001, 1.0, math.nan, math.inf]),
    st.text(max_size=3),
    WEIRD,
)
FLAGS = st.one_of(st.booleans(), st.integers(-1, 2), st.text(max_size=3), WEIRD)
HUGE_DECIMALS = st.builds(
    lambda mantissa, exponent: Decimal(f"{mantissa}e{exponent}"),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.integers(min_value=-2_000_000, max_value=2_000_000),
)
AMOUNTS = st.one_of(
    st.integers(min_value=1, max_value=10**15),
    st.integers(),
    st.sampled_from([10**100_000, -(10**100_000), 10**15, 10**15 - 1, 99, 100]),
    st.decimals(allow_nan=True, allow_infinity=True),
    HUGE_DECIMALS,
    st.floats(allow_nan=True),
    st.text(max_size=8),
    WEIRD,
)
TEXT = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="ascii"), min_size=1, max_size=70),
    st.sampled_from(["Ko Min Thu", "09791234567", "PO1", "KBZPAY", "WAVEPAY"]),
    st.integers(),
    WEIRD,
)
URLS = st.one_of(
    st.just(NOTIFY_URL),
    st.just("https://merchant.example/notify"),
    st.text(max_size=40).map(lambda t: "https://" + t),
    st.text(max_size=40),
    WEIRD,
)
BASE_URLS = st.one_of(
    st.just(BASE_URL),
    st.just("https://sandbox-api.vexora.com/myanmar"),
    st.text(max_size=40).map(lambda t: "https://" + t),
    st.text(max_size=20).map(lambda t: "https://" + t + "@host.example"),
    st.text(max_size=20).map(lambda t: "https://host.example:" + t),
    st.text(max_size=60),
    WEIRD,
)
TIMEOUTS = st.one_of(
    SECONDS,
    st.builds(
        lambda c, r, w, p: httpx.Timeout(connect=c, read=r, write=w, pool=p),
        *(st.one_of(st.none(), st.floats(allow_nan=True), st.integers()),) * 4,
    ),
)


def _wrap(value: object) -> Secret:
    return Secret(value)  # type: ignore[arg-type]  # any value, wrapped


def mostly_valid(
    valid: dict[str, Any], hostile: dict[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[dict[str, Any]]:
    """Keyword arguments: valid ones, with none, one or a few made hostile.

    One bad value among good ones is what a caller's bug looks like, and
    it exercises each check on its own; all-hostile examples rarely get
    past the first check.
    """

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        names = sorted(hostile)
        bad = draw(st.sets(st.sampled_from(names), max_size=min(3, len(names))))
        return {
            name: draw(hostile[name]) if name in bad else value
            for name, value in valid.items()
        } | {name: draw(hostile[name]) for name in bad if name not in valid}

    return build()


class CountingTransport(httpx.AsyncBaseTransport):
    """Answers as *answer* says and counts the requests that reached it."""

    def __init__(self, answer: Callable[[httpx.Request], httpx.Response]) -> None:
        self.answer = answer
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Count *request* and answer it."""
        self.requests += 1
        return self.answer(request)


def good_answer(request: httpx.Request) -> httpx.Response:
    """A valid envelope for whichever call *request* is."""
    fields = json.loads(request.content)
    trade_no = fields.get("tradeNo", "")
    path = request.url.path
    if path.endswith("queryBalance"):
        data: dict[str, Any] = {"availableAmount": "1000"}
    elif "query" in path:
        data = {"tradeNo": trade_no, "status": "0015", "orderAmount": "1000"}
    else:
        data = {"tradeNo": trade_no, "status": "0015", "amount": "1000"}
    return httpx.Response(200, json={"code": "0000", "msg": "success", "data": data})


# Sub-second everywhere: answers are instant, retries do not back off.
QUICK = RetryPolicy(
    max_retries=1,
    deadline=3,
    backoff_initial=0,
    backoff_max=0,
    max_reconcile_queries=2,
)


def client_on(transport: httpx.AsyncBaseTransport) -> VexoraClient:
    """A client sending through *transport*."""
    return VexoraClient(
        MERCHANT_NO,
        SECRET,
        BASE_URL,
        retry=QUICK,
        http_client=httpx.AsyncClient(transport=transport),
    )


def valid_payout() -> PayoutRequest:
    """A payout the gateway would take."""
    return PayoutRequest(
        trade_no="PO000000000001",
        amount=1000,
        bank_code="KBZPAY",
        bank_number="09791234567",
        name="Ko Min Thu",
        notify_url=NOTIFY_URL,
    )


def valid_deposit() -> DepositRequest:
    """A deposit the gateway would take."""
    return DepositRequest(
        trade_no="PI000000000001", amount=1000, name="Ko", notify_url=NOTIFY_URL
    )


# -- constructors -------------------------------------------------------------


@FUZZ
@given(
    mostly_valid(
        {"merchant_no": MERCHANT_NO, "app_secret": SECRET, "base_url": BASE_URL},
        {
            "merchant_no": TEXT,
            "app_secret": st.one_of(TEXT, TEXT.map(_wrap)),
            "base_url": BASE_URLS,
            "timeout": TIMEOUTS,
            "max_retries": COUNTS,
            "deadline": SECONDS,
            "max_connections": COUNTS,
            "amount_format": st.one_of(st.sampled_from(["integer", "decimal2"]), TEXT),
            "transport": st.one_of(st.sampled_from(["httpx", "aiohttp"]), TEXT),
            "retry": st.one_of(st.none(), st.just(QUICK), WEIRD),
            "ledger": st.one_of(st.none(), st.builds(MemoryLedger), WEIRD),
            "clock": st.one_of(st.just(time.time_ns), WEIRD),
            "middleware": st.one_of(st.just(()), WEIRD),
        },
    )
)
def test_fuzz_client_constructor(options: dict[str, Any]) -> None:
    """VexoraClient(...) builds or raises InvalidRequestError; nothing else."""
    client = attempt("VexoraClient", lambda: VexoraClient(**options))
    if isinstance(client, VexoraClient):
        asyncio.run(client.aclose())


PAYOUT: dict[str, Any] = {
    "trade_no": "PO000000000001",
    "amount": 1000,
    "bank_code": "KBZPAY",
    "bank_number": "09791234567",
    "name": "Ko Min Thu",
    "notify_url": NOTIFY_URL,
}
DEPOSIT: dict[str, Any] = {
    "trade_no": "PI000000000001",
    "amount": 1000,
    "name": "Ko",
    "notify_url": NOTIFY_URL,
}


@FUZZ
@given(
    mostly_valid(
        PAYOUT,
        {
            "trade_no": TEXT,
            "amount": AMOUNTS,
            "bank_code": TEXT,
            "bank_number": TEXT,
            "name": TEXT,
            "notify_url": URLS,
            "remark": st.one_of(st.none(), TEXT),
        },
    )
)
def test_fuzz_payout_request(fields: dict[str, Any]) -> None:
    """PayoutRequest(...) builds or raises InvalidRequestError, at once."""
    attempt("PayoutRequest", lambda: PayoutRequest(**fields))


@FUZZ
@given(
    mostly_valid(
        DEPOSIT,
        {
            "trade_no": TEXT,
            "amount": AMOUNTS,
            "name": TEXT,
            "notify_url": URLS,
            "channel_code": st.one_of(st.none(), TEXT),
            "way_code": st.one_of(st.none(), st.just("WAVEPAY"), TEXT),
            "return_url": st.one_of(st.none(), URLS),
            "remark": st.one_of(st.none(), TEXT),
        },
    )
)
def test_fuzz_deposit_request(fields: dict[str, Any]) -> None:
    """DepositRequest(...) builds or raises InvalidRequestError, at once."""
    attempt("DepositRequest", lambda: DepositRequest(**fields))


@FUZZ
@given(
    mostly_valid(
        {},
        {
            "max_retries": COUNTS,
            "deadline": SECONDS,
            "backoff_initial": SECONDS,
            "backoff_max": SECONDS,
            "retry_after_max": SECONDS,
            "reconcile": FLAGS,
            "resubmit": FLAGS,
            "verify_rejections": FLAGS,
            "max_reconcile_queries": COUNTS,
            "adopt_unchecked": FLAGS,
        },
    )
)
def test_fuzz_retry_policy(options: dict[str, Any]) -> None:
    """RetryPolicy(...) raises ours, never attrs' ValueError or TypeError."""
    policy = attempt("RetryPolicy", lambda: RetryPolicy(**options))
    if isinstance(policy, RetryPolicy):
        for attempt_no in range(policy.max_retries + 1):
            assert math.isfinite(policy.backoff(attempt_no))


@FUZZ
@given(
    memory=mostly_valid(
        {},
        {
            "max_entries": st.one_of(COUNTS, st.integers(1, 10**9)),
            "clock": st.one_of(st.just(time.time), WEIRD),
        },
    ),
    sqlite=mostly_valid(
        {"path": ":memory:"},
        {
            "path": st.one_of(
                st.text(max_size=5).map(lambda t: t + "\x00"), st.just(""), WEIRD
            ),
            "clock": st.one_of(st.just(time.time), WEIRD),
            "busy_timeout": SECONDS,
        },
    ),
)
def test_fuzz_ledgers(memory: dict[str, Any], sqlite: dict[str, Any]) -> None:
    """MemoryLedger and SQLiteLedger refuse wrong options with our error."""
    attempt("MemoryLedger", lambda: MemoryLedger(**memory))
    ledger = attempt("SQLiteLedger", lambda: SQLiteLedger(**sqlite))
    if isinstance(ledger, SQLiteLedger):
        asyncio.run(ledger.aclose())


@FUZZ
@given(amount_format=TEXT, prefix=st.one_of(st.text(max_size=50), TEXT))
def test_fuzz_helpers(amount_format: object, prefix: object) -> None:
    """make_converter and new_trade_no take any value without a foreign error."""
    attempt("make_converter", lambda: make_converter(amount_format))  # type: ignore[arg-type]  # the point
    trade_no = attempt("new_trade_no", lambda: new_trade_no(prefix))  # type: ignore[arg-type]  # the point
    if trade_no is not None:
        assert PayoutRequest(**PAYOUT | {"trade_no": trade_no}).trade_no == trade_no


NOTIFICATION = {
    "tradeNo": "PO1",
    "status": "0000",
    "amount": "100",
    "timestamp": str(int(time.time() * 1000)),
}
NOTIFICATION_BODY = json.dumps(NOTIFICATION | {"sign": sign(NOTIFICATION, SECRET)})


@FUZZ
@given(
    mostly_valid(
        {"kind": None, "max_bytes": 65_536, "max_age": None, "now": None},
        {
            "kind": st.one_of(st.sampled_from([None, "payout", "deposit"]), TEXT),
            "max_bytes": st.one_of(st.integers(1, 10**6), COUNTS),
            "max_age": st.one_of(st.none(), SECONDS),
            "now": st.one_of(st.none(), st.floats(0, 2e9), SECONDS),
        },
    )
)
def test_fuzz_parse_notification_options(options: dict[str, Any]) -> None:
    """With the option check in front, parse_notification raises only ours."""

    def parse() -> object:
        check_notification_options(**options)
        return parse_notification(NOTIFICATION_BODY.encode(), SECRET, **options)

    attempt("parse_notification", parse)


@pytest.mark.parametrize(
    "options",
    [
        {"max_bytes": "5"},
        {"max_age": math.nan},
        {"max_age": 5, "now": 10**400},
        {"kind": ["payout"]},
    ],
)
def test_parse_notification_checks_its_options(options: dict[str, Any]) -> None:
    """max_age=nan switches the age check off; "5" raises a bare TypeError."""
    with pytest.raises(InvalidRequestError):
        parse_notification(NOTIFICATION_BODY.encode(), SECRET, **options)


# -- every call's options -----------------------------------------------------

CALLS = ["create_payout", "resolve_payout", "get_payout", "get_balance"]
CALLS += ["create_deposit", "get_deposit"]
CREATES = {"create_payout", "resolve_payout", "create_deposit"}


def invoke(client: VexoraClient, name: str, **options: Any) -> Awaitable[object]:
    """Start call *name* with a valid request and *options*."""
    if name in {"create_payout", "resolve_payout"}:
        return getattr(client, name)(valid_payout(), **options)  # type: ignore[no-any-return]
    if name == "create_deposit":
        return client.create_deposit(valid_deposit(), **options)
    if name == "get_balance":
        return client.get_balance(**options)
    return getattr(client, name)("PO000000000001", **options)  # type: ignore[no-any-return]


@FUZZ
@given(
    name=st.sampled_from(CALLS),
    options=mostly_valid(
        {}, {"timeout": TIMEOUTS, "deadline": SECONDS, "max_retries": COUNTS}
    ),
)
def test_fuzz_per_call_options(name: str, options: dict[str, Any]) -> None:
    """A refused option sends nothing; a valid one reaches the gateway."""
    if name == "resolve_payout":
        options.pop("max_retries", None)
    transport = CountingTransport(good_answer)

    async def run() -> BaseException | None:
        async with client_on(transport) as client:
            call = invoke(client, name, **options)
            return await attempt_async(f"{name}(options)", call)

    error = asyncio.run(run())
    if options_are_valid(options, creates=name in CREATES):
        assert not isinstance(error, InvalidRequestError), (error, options)
        return
    # The specification says invalid: refused as such, and nothing sent.
    FIGURES["invalid_options"] += 1
    FIGURES["wire_invalid"] += transport.requests
    if not isinstance(error, InvalidRequestError):
        FIGURES["invalid_not_refused"] += 1
    if STRICT:
        assert isinstance(error, InvalidRequestError), (error, options)
        assert transport.requests == 0, (
            f"{name} sent {transport.requests} for {options}"
        )


def seconds_are_valid(value: object) -> bool:
    """The specification of a timeout or deadline, independent of the SDK."""
    if type(value) not in {int, float}:
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return 0 < value <= 86_400  # type: ignore[operator]  # an int or float


#: A create's deadline stays 10 s under the claim lease, which defaults to
#: twice the policy's deadline plus a minute (QUICK: 2 * 3 + 60 s): no other
#: worker may take its tradeNo over mid-call.
CREATE_DEADLINE_MAX = 2 * 3 + 60 - 10


def options_are_valid(options: dict[str, Any], *, creates: bool = False) -> bool:
    """Whether per-call *options* are valid, by the documented limits."""
    timeout = options.get("timeout")
    if isinstance(timeout, httpx.Timeout):
        limits = [timeout.connect, timeout.read, timeout.write, timeout.pool]
        timeout_ok = all(v is None or seconds_are_valid(v) for v in limits)
    else:
        timeout_ok = timeout is None or seconds_are_valid(timeout)
    deadline = options.get("deadline")
    retries = options.get("max_retries")
    return (
        timeout_ok
        and (deadline is None or seconds_are_valid(deadline))
        and (deadline is None or not creates or deadline <= CREATE_DEADLINE_MAX)
        and (retries is None or (type(retries) is int and 0 <= retries <= 100))
    )


# -- every call's answers -----------------------------------------------------

JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False),
        st.text(max_size=10),
    ),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
HOSTILE_AMOUNTS = st.one_of(
    st.sampled_from(
        ['"1e999999"', "1e999999", '"' + "9" * 100_000 + '"', "9" * 4000, '"NaN"']
    ),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.integers().map(str),
)
FIELDS = [
    "tradeNo",
    "status",
    "amount",
    "orderAmount",
    "payAmount",
    "availableAmount",
    "successTime",
    "platFormTradeNo",
]


@st.composite
def answers(draw: st.DrawFn) -> tuple[int, dict[str, str], bytes]:
    """An HTTP status, headers and a body: bytes, JSON or a near-envelope."""
    status = draw(st.sampled_from([200, 200, 200, 201, 400, 404, 429, 500, 503]))
    headers = draw(
        st.one_of(
            st.just({}),
            st.builds(
                lambda v: {"Retry-After": v},
                st.one_of(
                    st.sampled_from(["0", "nan", "inf", "-5", "1e9", "99999999999"]),
                    st.text(alphabet=st.characters(codec="ascii"), max_size=20),
                ),
            ),
        )
    )
    shape = draw(st.sampled_from(["bytes", "json", "envelope", "hostile"]))
    if shape == "bytes":
        body = draw(st.binary(max_size=64))
    elif shape == "json":
        body = json.dumps(draw(JSON_VALUES)).encode()
    else:
        code = draw(st.one_of(st.sampled_from(["0000", "5000", "8000"]), JSON_VALUES))
        data = draw(
            st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES, max_size=6)
            | JSON_VALUES
        )
        text = json.dumps({"code": code, "msg": "x", "data": data})
        if shape == "hostile":
            amount = draw(HOSTILE_AMOUNTS)
            field = draw(st.sampled_from(["amount", "orderAmount", "availableAmount"]))
            text = (
                '{"code":"0000","msg":"success","data":{"tradeNo":"PO000000000001",'
                f'"status":"0015","{field}":{amount}}}}}'
            )
        body = text.encode()
    return status, headers, body


@FUZZ
@given(name=st.sampled_from(CALLS), answer=answers())
def test_fuzz_answers(name: str, answer: tuple[int, dict[str, str], bytes]) -> None:
    """Whatever the gateway answers, every call ends in a result or our error."""
    status, headers, body = answer
    transport = CountingTransport(
        lambda _: httpx.Response(status, headers=headers, content=body)
    )

    async def run() -> None:
        async with client_on(transport) as client:
            await attempt_async(f"{name}(answers)", invoke(client, name))

    asyncio.run(run())


# -- the figures --------------------------------------------------------------


def test_fuzz_figures() -> None:
    """Sum the campaign; print it (run with -s to see it)."""
    examples = sum(n for key, n in FIGURES.items() if key.endswith(":examples"))
    if not examples:
        pytest.skip("run with the fuzz tests above")
    foreign = sum(n for key, n in FIGURES.items() if key.endswith(":foreign"))
    targets = sorted({key.split(":")[0] for key in FIGURES if ":" in key})
    for target in targets:
        print(  # noqa: T201 - the campaign's report
            f"{target:28} examples={FIGURES[f'{target}:examples']:4} "
            f"refused={FIGURES[f'{target}:refused']:4} "
            f"accepted={FIGURES[f'{target}:accepted']:4} "
            f"foreign={FIGURES[f'{target}:foreign']} "
            f"stalled={FIGURES[f'{target}:stalled']} "
            f"slowest={SLOWEST.get(target, 0.0) * 1000:.1f}ms"
        )
    stalled = sum(n for key, n in FIGURES.items() if key.endswith(":stalled"))
    print(  # noqa: T201
        f"TOTAL examples={examples} foreign={foreign} stalled={stalled} "
        f"invalid_options={FIGURES['invalid_options']} "
        f"invalid_not_refused={FIGURES['invalid_not_refused']} "
        f"wire_invalid={FIGURES['wire_invalid']}"
    )
    assert foreign == 0
    assert stalled == 0
    assert FIGURES["invalid_not_refused"] == 0
    assert FIGURES["wire_invalid"] == 0
