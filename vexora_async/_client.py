"""VexoraClient: the five gateway calls over one shared httpx client."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import sys
import time
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import httpx

from . import _json
from ._batch import DEFAULT_CONCURRENCY, create_payouts
from ._converter import AmountFormat, WireCodec
from ._idempotency import IdempotencyMiddleware
from ._ledger import Ledger, MemoryLedger
from ._masking import mask_account, mask_digit_runs, mask_name
from ._middleware import Call, Middleware, build_chain
from ._models import (
    Balance,
    DepositRequest,
    DepositResult,
    DepositStatus,
    Envelope,
    PayoutRequest,
    PayoutResult,
    PayoutStatus,
)
from ._operations import Operation, outcome_unknown
from ._retry import RetryMiddleware, RetryPolicy
from ._signer import sign
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
    ConnectError,
    DecodingError,
    GatewayError,
    HTTPStatusError,
    InvalidRequestError,
    OutcomeUnknown,
    RequestRejected,
    RequestTimeout,
    TransportError,
    VexoraError,
)


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

CODE_OK = "0000"
CODE_REJECTED = "8000"
_EXCERPT_CHARS = 200
# A failure to reach the gateway at all: the request provably was not sent.
# Building the request (a bad URL, an unsupported scheme) or reaching a proxy
# fails before anything reaches the gateway too.
_NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ProxyError,
    httpx.UnsupportedProtocol,
    httpx.InvalidURL,
)
_UNSET: Any = object()


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


def _is_count(value: object, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    # delay-seconds is digits only; float() would also take "inf" and "nan".
    seconds = value.strip()
    if seconds.isascii() and seconds.isdigit():
        return float(seconds)
    from email.utils import parsedate_to_datetime  # noqa: PLC0415 - rare path

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


class _Secret:
    """Holds the app secret so that no repr, log or traceback shows it."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<secret>"


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
    shared one for many workers). *middleware* adds your own layers; they
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
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        amount_format: AmountFormat = "integer",
        clock: Callable[[], int] = _epoch_ms,
        middleware: Sequence[Middleware] = (),
        transport: TransportName = "httpx",
    ) -> None:
        self._merchant_no = _check_credential("merchant_no", merchant_no)
        self._secret = _Secret(_check_credential("app_secret", app_secret))
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
        self._codec = WireCodec.create(amount_format)
        self._clock = clock
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
        self._limiter = asyncio.Semaphore(max_connections)
        self._headers: dict[str, str] | None = {
            "Content-Type": "application/json",
            "merchantNo": self._merchant_no,
            "User-Agent": USER_AGENT,
        }
        if self._owns_http:
            # On our own client they are set once, not merged per request.
            self._http.headers.update(self._headers)
            self._headers = None
        # Parsed once: httpx parses a str URL on every request.
        self._urls = {op: httpx.URL(self._base_url + op.path) for op in Operation}
        self._closed = False
        self._idempotency = IdempotencyMiddleware(
            self.ledger,
            self._codec,
            namespace=self._merchant_no,
            # A claim outlives any call of ours by a wide margin before
            # another worker may presume its owner dead.
            lease=2 * self.retry_policy.deadline + 60.0,
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
        self._closed = True
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

    async def _send(self, call: Call) -> object:
        """Innermost step: stamp, sign, POST, decode. One HTTP attempt."""
        if self._closed or self._http.is_closed:
            raise InvalidRequestError(None, "the client is closed; nothing was sent")
        operation = call.operation
        fields: dict[str, str] = dict(call.params)
        fields["timestamp"] = str(self._clock())
        fields["sign"] = sign(fields, self._secret.value)
        body = _json.dumps(fields)
        started = time.perf_counter()
        await self._acquire(call)
        try:
            timeout = self._attempt_timeout(call)
            try:
                response = await self._http.post(
                    self._urls[operation],
                    content=body,
                    headers=self._headers,
                    timeout=timeout,
                )
            # The edge of the network: every failure becomes one of ours,
            # classified by whether the gateway may have seen the request.
            except Exception as exc:
                raise self._transport_error(call, exc, started) from exc
        finally:
            self._limiter.release()
        elapsed_ms = (time.perf_counter() - started) * 1000
        return self._interpret(call, response, elapsed_ms)

    async def _acquire(self, call: Call) -> None:
        """Wait for a free connection slot, but not past the call's deadline."""
        remaining = call.remaining(asyncio.get_running_loop().time())
        if remaining is None or not self._limiter.locked():
            await self._limiter.acquire()  # free slot: no wait, no timer
            return
        try:
            if sys.version_info >= (3, 11):
                async with asyncio.timeout(max(remaining, 0.0)):
                    await self._limiter.acquire()
            else:  # pragma: no cover - exercised on Python 3.10 only
                await asyncio.wait_for(self._limiter.acquire(), max(remaining, 0.0))
        except (TimeoutError, asyncio.TimeoutError):
            raise ConnectError(
                "the call's deadline passed while it waited for a free connection; "
                "nothing was sent",
                operation=call.operation.label,
                trade_no=call.trade_no,
            ) from None

    def _attempt_timeout(self, call: Call) -> httpx.Timeout:
        """Return this attempt's timeouts, cut to what is left of the deadline."""
        base = call.timeout or self._timeout or self._http.timeout
        remaining = call.remaining(asyncio.get_running_loop().time())
        if remaining is None or remaining >= _longest(base):
            # Nothing to cut (the usual case): no new Timeout per attempt.
            return base
        if remaining <= 0:
            # Checked after queueing for a connection, before any byte is sent.
            raise ConnectError(
                "the call's deadline passed before this attempt; nothing was sent",
                operation=call.operation.label,
                trade_no=call.trade_no,
            )
        return httpx.Timeout(
            connect=_cut(base.connect, remaining),
            read=_cut(base.read, remaining),
            write=_cut(base.write, remaining),
            pool=_cut(base.pool, remaining),
        )

    def _interpret(
        self, call: Call, response: httpx.Response, elapsed_ms: float
    ) -> object:
        operation = call.operation
        status = response.status_code
        if not 200 <= status < 300:  # noqa: PLR2004
            self._log(call, status, None, elapsed_ms)
            raise self._status_error(call, response)
        try:
            envelope = self._codec.decode_envelope(response.content)
            self._log(call, status, envelope.code, elapsed_ms)
            if envelope.code == CODE_OK:
                return self._result(call, envelope)
        except DecodingError as exc:
            self._log(call, status, None, elapsed_ms)
            if operation.creates:
                raise self._unknown(
                    call, f"the answer could not be read: {exc}"
                ) from exc
            raise _with_identity(exc, call) from exc.__cause__
        # The gateway's msg is free text: never let it carry the secret out.
        msg = self._redact(envelope.msg)
        if envelope.code == CODE_REJECTED:
            raise RequestRejected(
                envelope.code,
                msg,
                operation=operation.label,
                trade_no=call.trade_no,
            )
        if operation.creates:
            # 5000 ("do NOT treat as failed") and any code the docs do not
            # define: the transaction may exist.
            raise self._unknown(
                call, f"the gateway answered code {envelope.code}: {msg}"
            )
        raise GatewayError(
            envelope.code,
            msg,
            operation=operation.label,
            trade_no=call.trade_no,
        )

    def _result(self, call: Call, envelope: Envelope) -> object:
        result: object = self._codec.decode_data(envelope, call.operation.result_type)
        echoed = getattr(result, "trade_no", None)
        if call.trade_no is not None and echoed != call.trade_no:
            # An answer about another transaction is not an answer about ours.
            msg = f"the answer is about tradeNo {echoed!r}, not ours"
            raise DecodingError(msg)
        return result

    def _transport_error(
        self, call: Call, exc: Exception, started: float
    ) -> VexoraError:
        elapsed_ms = (time.perf_counter() - started) * 1000
        logger.debug(
            "POST %s op=%s trade_no=%s failed=%s elapsed_ms=%.1f",
            call.operation.path,
            call.operation.label,
            call.trade_no,
            type(exc).__name__,
            elapsed_ms,
        )
        label, trade_no = call.operation.label, call.trade_no
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if isinstance(exc, _NOT_SENT):
            return ConnectError(
                f"could not reach the gateway ({reason}); nothing was sent",
                operation=label,
                trade_no=trade_no,
            )
        if call.operation.creates:
            return self._unknown(call, f"the exchange failed after sending ({reason})")
        if isinstance(exc, httpx.TimeoutException):
            return RequestTimeout(
                f"the gateway did not answer in time ({reason})",
                operation=label,
                trade_no=trade_no,
            )
        return TransportError(
            f"the exchange with the gateway failed ({reason})",
            operation=label,
            trade_no=trade_no,
        )

    def _status_error(self, call: Call, response: httpx.Response) -> VexoraError:
        status = response.status_code
        # 5xx (but 503, "unavailable"), 408 and anything unexpected after a
        # create may mean the gateway executed it.
        maybe_executed = (status >= 500 and status != 503) or status == 408  # noqa: PLR2004
        if call.operation.creates and maybe_executed:
            return self._unknown(call, f"the gateway answered HTTP {status}")
        excerpt = self._excerpt(response.content)
        return HTTPStatusError(
            f"the gateway answered HTTP {status}: {excerpt!r}",
            status_code=status,
            body_excerpt=excerpt,
            retry_after=_retry_after(response),
            operation=call.operation.label,
            trade_no=call.trade_no,
        )

    def _excerpt(self, content: bytes) -> str:
        text = content[: _EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
        return self._redact(text)[:_EXCERPT_CHARS]

    def _redact(self, text: str) -> str:
        """Remove the secret and mask account-like digit runs from gateway text."""
        return mask_digit_runs(text.replace(self._secret.value, "<secret>"))

    def _unknown(self, call: Call, reason: str) -> OutcomeUnknown:
        logger.info(
            "attempt outcome unknown op=%s trade_no=%s: %s",
            call.operation.label,
            call.trade_no,
            reason,
        )
        return outcome_unknown(call.operation, call.trade_no, reason)

    def _log(
        self, call: Call, status: int, code: str | None, elapsed_ms: float
    ) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "POST %s op=%s trade_no=%s http=%s code=%s elapsed_ms=%.1f",
                call.operation.path,
                call.operation.label,
                call.trade_no,
                status,
                code,
                elapsed_ms,
            )

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


def _longest(timeout: httpx.Timeout) -> float:
    longest = 0.0
    for limit in (timeout.connect, timeout.read, timeout.write, timeout.pool):
        if limit is None:
            return float("inf")
        longest = max(longest, limit)
    return longest


def _cut(limit: float | None, remaining: float) -> float:
    return remaining if limit is None else min(limit, remaining)


def _with_identity(exc: VexoraError, call: Call) -> VexoraError:
    exc.operation = call.operation.label
    exc.trade_no = call.trade_no
    return exc
