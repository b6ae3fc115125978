"""VexoraClient: the five gateway calls over one shared httpx client."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import httpx

from ._batch import DEFAULT_CONCURRENCY, create_payouts
from ._converter import AmountFormat, WireCodec
from ._exchange import Exchange, Secret
from ._idempotency import IdempotencyMiddleware
from ._masking import mask_account, mask_name
from ._middleware import Call, Middleware, build_chain
from ._models import (
    Balance,
    DepositRequest,
    DepositResult,
    DepositStatus,
    PayoutRequest,
    PayoutResult,
    PayoutStatus,
)
from ._operations import Operation
from ._retry import RetryMiddleware, RetryPolicy
from ._transport import (
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_TIMEOUT,
    USER_AGENT,
    TransportName,
    check_transport,
    make_http_client,
)
from ._validation import check_trade_no
from .exceptions import (
    InvalidRequestError,
    VexoraError,
)
from .ledgers import Ledger, MemoryLedger


if TYPE_CHECKING:
    from collections.abc import (
        AsyncGenerator,
        AsyncIterable,
        Callable,
        Iterable,
        Sequence,
    )
    from types import TracebackType

    from ._batch import BatchProgress, PayoutOutcome


logger = logging.getLogger("vexora_async")
T = TypeVar("T")

_UNSET: Any = object()

#: How much longer than a call's deadline a claim must last at least: the
#: slack for recording its outcome and a stall of the worker's event loop.
LEASE_MARGIN = 10.0


def _epoch_ms() -> int:
    return time.time_ns() // 1_000_000


def _check_base_url(base_url: object) -> str:
    if not isinstance(base_url, str) or not base_url:
        raise InvalidRequestError(
            "base_url", "is required (there is no public default)"
        )
    try:
        parts = urlsplit(base_url)
        host = parts.hostname
        # A bad port would otherwise fail inside the POST and read as an
        # unknown outcome for a payout that was never sent.
        _ = parts.port
    except ValueError as exc:
        raise InvalidRequestError("base_url", f"is not a valid URL ({exc})") from exc
    if not host or parts.query or parts.fragment:
        raise InvalidRequestError("base_url", "must be an absolute URL with no query")
    if parts.scheme == "https":
        return base_url.rstrip("/")
    if parts.scheme == "http" and _is_loopback(host):
        return base_url.rstrip("/")
    raise InvalidRequestError(
        "base_url", "must be https (plain http only for a loopback address)"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_credential(field: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidRequestError(field, "must be a non-empty str")
    if not value.isascii() or not value.isprintable() or value != value.strip():
        raise InvalidRequestError(field, "must be printable ASCII with no edge spaces")
    return value


def _as_timeout(value: float | httpx.Timeout | None) -> httpx.Timeout | None:
    if value is None or isinstance(value, httpx.Timeout):
        return value
    if not _is_number(value) or value <= 0:
        raise InvalidRequestError(
            "timeout", "must be a positive number or httpx.Timeout"
        )
    return httpx.Timeout(value, connect=min(value, DEFAULT_TIMEOUT.connect or value))


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _claim_lease(value: object, deadline: float) -> float:
    floor = deadline + LEASE_MARGIN
    if value is None:
        # A claim outlives any call of ours by a wide margin before
        # another worker may presume its owner dead.
        return 2 * deadline + 60.0
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not floor <= value < float("inf")
    ):
        raise InvalidRequestError(
            "claim_lease",
            f"must be a finite number of seconds >= the deadline + "
            f"{LEASE_MARGIN:g} s ({floor:g} s here)",
        )
    return float(value)


def _is_count(value: object, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


class VexoraClient:
    """An async client for the Vexora gateway.

    Create one per process (or per event loop) and share it: every call goes
    through one ``httpx.AsyncClient`` and its connection pool. Use it as an
    async context manager, or call :meth:`aclose` when done::

        async with VexoraClient(
            merchant_no="1000000001",
            app_secret=os.environ["VEXORA_APP_SECRET"],
            base_url="https://<your country's base URL>",
        ) as client:
            result = await client.create_payout(request)

    *http_client* injects your own ``httpx.AsyncClient`` (with your
    transport, proxies or event hooks); the SDK never closes a client it did
    not create. *timeout* applies to each HTTP attempt; *max_connections*
    caps both the SDK's concurrency and the pool it creates, so that
    thousands of concurrent calls queue inside the SDK instead of failing
    with a pool timeout. *amount_format* picks ``"100"`` (default) or
    ``"100.00"`` on the wire. *clock* returns epoch milliseconds for the
    ``timestamp`` field.

    Retries and idempotency (see :doc:`/retries`): *max_retries* extra
    attempts after a transient failure, all within *deadline* seconds per
    call (attempts, backoff and reconciliation together); *retry* gives the
    full :class:`RetryPolicy` instead. *ledger* records each tradeNo's
    outcome (default: a bounded in-memory :class:`MemoryLedger`; pass a
    shared one for many workers). *claim_lease* is how long, in seconds,
    a tradeNo claimed by a worker is respected by the others before they
    presume that worker dead and take it over (default: twice the deadline
    plus a minute; at least the deadline plus 10 s, and a call's own
    *deadline* must stay 10 s under it). *middleware* adds your own layers; they
    run inside the retry layer, once per attempt, just before signing.

    *transport* ``"aiohttp"`` sends through aiohttp under the same
    ``httpx.AsyncClient`` (the ``aiohttp`` extra; see :doc:`/performance`).
    """

    def __init__(
        self,
        merchant_no: str,
        app_secret: str,
        base_url: str,
        *,
        http_client: httpx.AsyncClient | None = None,
        timeout: float | httpx.Timeout = _UNSET,
        max_retries: int = 2,
        deadline: float = 60.0,
        retry: RetryPolicy | None = None,
        ledger: Ledger | None = None,
        claim_lease: float | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        amount_format: AmountFormat = "integer",
        clock: Callable[[], int] = _epoch_ms,
        middleware: Sequence[Middleware] = (),
        transport: TransportName = "httpx",
    ) -> None:
        self._merchant_no = _check_credential("merchant_no", merchant_no)
        secret = Secret(_check_credential("app_secret", app_secret))
        self._base_url = _check_base_url(base_url)
        if not _is_count(max_retries, 0):
            raise InvalidRequestError("max_retries", "must be an int >= 0")
        if not _is_count(max_connections, 1):
            raise InvalidRequestError("max_connections", "must be an int >= 1")
        if amount_format not in ("integer", "decimal2"):
            raise InvalidRequestError(
                "amount_format", "must be 'integer' or 'decimal2'"
            )
        if not _is_number(deadline) or deadline <= 0:
            raise InvalidRequestError("deadline", "must be a positive number")
        self.retry_policy = retry or RetryPolicy(
            max_retries=max_retries, deadline=deadline
        )
        self.ledger: Ledger = ledger if ledger is not None else MemoryLedger()
        self.claim_lease = _claim_lease(claim_lease, self.retry_policy.deadline)
        self._codec = WireCodec.create(amount_format)
        if timeout is _UNSET:
            # An injected client keeps its own timeout unless one is given.
            self._timeout: httpx.Timeout | None = (
                DEFAULT_TIMEOUT if http_client is None else None
            )
        else:
            self._timeout = _as_timeout(timeout)
        self._owns_http = http_client is None
        transport = check_transport(transport, injected=http_client is not None)
        self._http = http_client or make_http_client(
            timeout=self._timeout or DEFAULT_TIMEOUT,
            max_connections=max_connections,
            transport=transport,
        )
        headers: dict[str, str] | None = {
            "Content-Type": "application/json",
            "merchantNo": self._merchant_no,
            "User-Agent": USER_AGENT,
        }
        if self._owns_http:
            # On our own client they are set once, not merged per request.
            self._http.headers.update(headers)
            headers = None
        self._send = Exchange(
            http=self._http,
            secret=secret,
            clock=clock,
            codec=self._codec,
            # Parsed once: httpx parses a str URL on every request.
            urls={op: httpx.URL(self._base_url + op.path) for op in Operation},
            headers=headers,
            timeout=self._timeout,
            max_connections=max_connections,
        )
        self._limiter = self._send.limiter
        self._idempotency = IdempotencyMiddleware(
            self.ledger,
            self._codec,
            namespace=self._merchant_no,
            lease=self.claim_lease,
        )
        self._retry = RetryMiddleware(self.retry_policy)
        self._handler = build_chain(
            (self._idempotency, self._retry, *middleware),
            self._send,
        )

    @property
    def max_retries(self) -> int:
        """Extra attempts after a transient failure, per call."""
        return self.retry_policy.max_retries

    def __repr__(self) -> str:
        return (
            f"VexoraClient(merchant_no={self._merchant_no!r}, "
            f"base_url={self._base_url!r})"
        )

    @property
    def base_url(self) -> str:
        """The gateway base URL, without a trailing slash."""
        return self._base_url

    @property
    def merchant_no(self) -> str:
        """The merchant number sent in the ``merchantNo`` header."""
        return self._merchant_no

    @property
    def http_client(self) -> httpx.AsyncClient:
        """The shared httpx client every call goes through."""
        return self._http

    # Self would need Python 3.11 or typing_extensions; one class is enough.
    async def __aenter__(self) -> VexoraClient:  # noqa: PYI034
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the httpx client if the SDK created it. Idempotent."""
        self._send.closed = True
        if self._owns_http:
            await self._http.aclose()

    # -- the five calls ---------------------------------------------------

    async def create_payout(
        self,
        request: PayoutRequest,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        deadline: float | None = None,
    ) -> PayoutResult:
        """Send a payout; return the gateway's acceptance (usually processing).

        The final result arrives by callback or :meth:`get_payout`. Calling
        again with the same request is safe: it never pays twice (see
        :doc:`/retries`). Raises :class:`~vexora_async.RequestRejected` when
        the gateway refused the payout (nothing was paid),
        :class:`~vexora_async.ConflictingRequestError` when the tradeNo was
        used for a different payout, and
        :class:`~vexora_async.PayoutOutcomeUnknown` when it may have been paid
        but the SDK could not find out within the deadline.
        """
        if not isinstance(request, PayoutRequest):
            raise InvalidRequestError(None, "create_payout takes a PayoutRequest")
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "payout trade_no=%s amount=%s bank=%s account=%s name=%s",
                request.trade_no,
                request.amount,
                request.bank_code,
                mask_account(request.bank_number),
                mask_name(request.name),
            )
        return await self._call(
            Operation.CREATE_PAYOUT,
            self._codec.encode(request),
            request.trade_no,
            PayoutResult,
            timeout=timeout,
            max_retries=max_retries,
            deadline=deadline,
        )

    async def resolve_payout(
        self,
        request: PayoutRequest,
        *,
        timeout: float | httpx.Timeout | None = None,
        deadline: float | None = None,
    ) -> PayoutResult:
        """Settle a payout whose outcome was unknown, under its own tradeNo.

        Asks the gateway first (status query); if it does not know the
        tradeNo, sends the same request again (unless the retry policy's
        ``resubmit`` is off). Use it after
        :class:`~vexora_async.PayoutOutcomeUnknown`, for example from a
        periodic job, with the request you stored before the first attempt.
        """
        if not isinstance(request, PayoutRequest):
            raise InvalidRequestError(None, "resolve_payout takes a PayoutRequest")
        return await self._call(
            Operation.CREATE_PAYOUT,
            self._codec.encode(request),
            request.trade_no,
            PayoutResult,
            timeout=timeout,
            deadline=deadline,
            reconcile_first=True,
        )

    async def get_payout(
        self,
        trade_no: str,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        deadline: float | None = None,
    ) -> PayoutStatus:
        """Query a payout's state by your tradeNo.

        :class:`~vexora_async.RequestRejected` here means the *query* was
        refused (for example, the gateway does not know the tradeNo); it is
        never a statement that the payout failed.
        """
        check_trade_no("trade_no", trade_no)
        return await self._call(
            Operation.GET_PAYOUT,
            {"tradeNo": trade_no},
            trade_no,
            PayoutStatus,
            timeout=timeout,
            max_retries=max_retries,
            deadline=deadline,
        )

    async def get_balance(
        self,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        deadline: float | None = None,
    ) -> Balance:
        """Query the merchant's balance."""
        return await self._call(
            Operation.GET_BALANCE,
            {},
            None,
            Balance,
            timeout=timeout,
            max_retries=max_retries,
            deadline=deadline,
        )

    async def create_deposit(
        self,
        request: DepositRequest,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        deadline: float | None = None,
    ) -> DepositResult:
        """Create a pay-in (checkout); see :attr:`DepositResult.raw` for its URL."""
        if not isinstance(request, DepositRequest):
            raise InvalidRequestError(None, "create_deposit takes a DepositRequest")
        return await self._call(
            Operation.CREATE_DEPOSIT,
            self._codec.encode(request),
            request.trade_no,
            DepositResult,
            timeout=timeout,
            max_retries=max_retries,
            deadline=deadline,
        )

    async def get_deposit(
        self,
        trade_no: str,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        deadline: float | None = None,
    ) -> DepositStatus:
        """Query a pay-in's state by your tradeNo."""
        check_trade_no("trade_no", trade_no)
        return await self._call(
            Operation.GET_DEPOSIT,
            {"tradeNo": trade_no},
            trade_no,
            DepositStatus,
            timeout=timeout,
            max_retries=max_retries,
            deadline=deadline,
        )

    # -- the path of one call ---------------------------------------------

    async def _call(
        self,
        operation: Operation,
        params: dict[str, str],
        trade_no: str | None,
        result_type: type[T],
        *,
        timeout: float | httpx.Timeout | None,
        max_retries: int | None = None,
        deadline: float | None = None,
        reconcile_first: bool = False,
    ) -> T:
        if max_retries is not None and not _is_count(max_retries, 0):
            raise InvalidRequestError("max_retries", "must be an int >= 0")
        if deadline is not None and (not _is_number(deadline) or deadline <= 0):
            raise InvalidRequestError("deadline", "must be a positive number")
        budget = self.retry_policy.deadline if deadline is None else deadline
        if operation.creates and budget > self.claim_lease - LEASE_MARGIN:
            raise InvalidRequestError(
                "deadline",
                f"must stay {LEASE_MARGIN:g} s under the claim lease "
                f"({self.claim_lease:g} s), so that no other worker takes "
                "the tradeNo over while this call runs",
            )
        call = Call(
            operation,
            params,
            trade_no,
            timeout=_as_timeout(timeout),
            deadline=asyncio.get_running_loop().time() + budget,
            max_retries=max_retries,
            reconcile_first=reconcile_first,
        )
        result = await self._handler(call)
        if not isinstance(result, result_type):
            msg = f"a middleware answered {type(result).__name__}, not {result_type}"
            raise VexoraError(msg, operation=operation.label, trade_no=trade_no)
        return result

    # -- many payouts -------------------------------------------------------

    def create_payouts(
        self,
        requests: Iterable[PayoutRequest] | AsyncIterable[PayoutRequest],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        on_progress: Callable[[BatchProgress], object] | None = None,
    ) -> AsyncGenerator[PayoutOutcome, None]:
        """Send many payouts; yield one :class:`PayoutOutcome` per request.

        *requests* is any iterable or async iterable of
        :class:`PayoutRequest`, read lazily (a generator of 100,000 requests
        keeps memory flat). A fixed pool of *concurrency* workers sends them
        through :meth:`create_payout`. Outcomes come **in completion order**,
        not input order; each carries its request. No error stops the batch:
        each becomes an outcome of kind accepted, rejected, unknown (to
        settle later by :meth:`resolve_payout`) or error (not executed).
        *on_progress* is called with a :class:`BatchProgress` before each
        outcome is yielded. Leaving the loop early or cancelling it cancels
        the workers; ``contextlib.aclosing`` makes that immediate::

            async with contextlib.aclosing(client.create_payouts(reqs)) as it:
                async for outcome in it:
                    ...
        """
        return create_payouts(
            self, requests, concurrency=concurrency, on_progress=on_progress
        )
