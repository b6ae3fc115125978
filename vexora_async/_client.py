"""VexoraClient: the five gateway calls over one shared HTTP client."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, TypeVar

from ._batch import DEFAULT_CONCURRENCY, create_payouts
from ._converter import WireCodec
from ._exchange import Exchange
from ._idempotency import IdempotencyMiddleware, fingerprint
from ._masking import Params, mask_account, mask_name
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
from ._options import UNSET, as_timeout, call_deadline, check_options
from ._outcomes import call_outcome
from ._retry import RetryMiddleware, RetryPolicy
from ._secret import Secret, as_secret, check_credential, credential_problem
from ._transports import (
    ACCEPT_ENCODING,
    DEFAULT_MAX_ANSWER_BYTES,
    DEFAULT_TIMEOUT,
    USER_AGENT,
    HttpxPort,
    TransportName,
    make_port,
)
from ._validation import check_retries, check_trade_no
from .events import CallFinished, CallStarted, Trace
from .exceptions import (
    ClientClosedError,
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

    import httpx

    from ._batch import BatchProgress, PayoutOutcome
    from ._converter import AmountFormat
    from .events import Event


logger = logging.getLogger("vexora_async")
T = TypeVar("T")


def _checked(call: Call, result: object, expected: type[T]) -> T:
    if not isinstance(result, expected):
        msg = f"a middleware answered {type(result).__name__}, not {expected.__name__}"
        raise VexoraError(msg, operation=call.label, trade_no=call.trade_no)
    return result


def _epoch_ms() -> int:
    return time.time_ns() // 1_000_000


def _creating(request: object, method: str) -> Operation:
    """Return the create that sends *request*, or refuse it."""
    if isinstance(request, PayoutRequest):
        return Operation.CREATE_PAYOUT
    if isinstance(request, DepositRequest):
        return Operation.CREATE_DEPOSIT
    raise InvalidRequestError(
        None, f"{method} takes a PayoutRequest or a DepositRequest"
    )


class VexoraClient:
    """An async client for the Vexora gateway.

    Create one per process (or per event loop) and share it: every call goes
    through one connection pool. Use it as an async context manager, or call
    :meth:`aclose` when done::

        async with VexoraClient(
            merchant_no="1000000001",
            app_secret=os.environ["VEXORA_APP_SECRET"],
            base_url="https://<your country's base URL>",
        ) as client:
            result = await client.create_payout(request)

    Every option is checked here, before anything is built or sent: a bad
    one raises :class:`~vexora_async.InvalidRequestError` (a
    ``ValueError``) whose ``field`` names it. Wherever seconds are taken,
    they are an ``int`` or ``float`` over 0 and at most 86,400 (one day);
    NaN, infinities and ``bool`` are refused wherever a number is.

    :param merchant_no: Your merchant number, sent in the ``merchantNo``
        header of every call. Required. Valid: 1 to 1,024 printable ASCII
        characters, with no leading or trailing space.
    :param app_secret: The secret every request is signed with: a ``str``
        or a :class:`~vexora_async.Secret`. Required. Valid: as
        *merchant_no*; an error about it never repeats it. The client wraps
        a ``str`` before anything else, and ``Secret(os.environ[...])``
        keeps the plain string out of every frame an error reporter
        records.
    :param base_url: Your country's gateway URL, handed out at onboarding.
        Required: there is no public default. Valid: ``https://``, or plain
        ``http://`` to a loopback address only (a local sandbox); no
        credentials (``user:password@``), query, fragment, whitespace or
        control characters; at most 2,048 characters. A trailing slash is
        dropped.
    :param http_client: Your own ``httpx.AsyncClient`` (your transport,
        proxies or event hooks). Default ``None``: the SDK makes one, and
        closes it in :meth:`aclose`; it never closes yours. Yours keeps its
        own timeout unless *timeout* is given (its limits are checked as
        *timeout*'s are), and cannot be combined with
        ``transport="aiohttp"``.
    :param timeout: Each HTTP attempt's limits: seconds, or an
        ``httpx.Timeout``. Default ``httpx.Timeout(30.0, connect=5.0,
        write=10.0, pool=30.0)`` on the client the SDK makes; an injected
        *http_client*'s own otherwise. A number ``n`` sets every limit to
        ``n``, connect to at most 5 s. Valid: each limit over 0 and at most
        86,400 (``None`` inside an ``httpx.Timeout``: no limit). Each
        attempt's limits are cut to what is left of the call's *deadline*.
        Cost: a read limit shorter than the gateway's answer time makes a
        payout's outcome unknown, which costs a status query to settle.
    :param max_retries: Extra attempts after a transient failure, per call.
        Default ``2``. Valid: an ``int`` from 0 to 100. Cost: each retry is
        one more request and a backoff sleep, but only within *deadline*:
        retries never make a call outlast it.
    :param deadline: Seconds for a whole call: every attempt (connecting,
        sending, reading the answer), backoff sleep and reconciliation
        query together. Default ``60.0``. Valid: over 0, at most 86,400,
        and at least 10 s under *claim_lease*. Cost: a shorter one gives up
        sooner, leaving more payouts
        :class:`~vexora_async.PayoutOutcomeUnknown` to settle later with
        :meth:`resolve_payout`.
    :param retry: The whole :class:`RetryPolicy` (backoff, reconciliation,
        resubmission...), instead of *max_retries* and *deadline*. Default
        ``None``: ``RetryPolicy(max_retries=max_retries,
        deadline=deadline)``. Valid: a :class:`RetryPolicy`, with
        *max_retries* and *deadline* left at their defaults (give them
        inside the policy).
    :param ledger: Where each tradeNo's claim and outcome are recorded, so
        that calling again never pays twice (see :doc:`/retries`). Default
        ``None``: a :class:`MemoryLedger` of this client alone (at most
        20,000 settled entries, some 14 MB). Valid: anything with async
        ``claim``, ``settle``, ``release`` and ``get`` (the
        :class:`Ledger` protocol). Give workers that may send the same
        payout one shared ledger (:class:`SQLiteLedger`,
        :class:`RedisLedger`, :class:`PostgresLedger`). Cost: a claim before
        each create is sent and a settle after it: two round trips to a
        shared store per create; queries do not touch it.
    :param claim_lease: Seconds a tradeNo claimed by a worker is respected
        by the others before they presume that worker dead and take the
        payout over. Default ``None``: twice the deadline plus 60 s (180 s
        with the default deadline). Valid: finite, and at least the
        deadline plus 10 s. Cost: a crashed worker's payouts wait this long
        before another worker settles them.
    :param max_connections: The most requests in flight at once, and the
        size of the pool the SDK makes: more concurrent calls queue inside
        the SDK (within their deadline) instead of failing with a pool
        timeout. Default ``20`` with ``transport="httpx"``, ``100`` with
        ``"aiohttp"``. Valid: an ``int`` from 1 to 10,000. Cost: up to one
        socket (and TLS session) each, kept open 30 s when idle; on httpx,
        past a few dozen connections the pool's own bookkeeping costs more
        than a request (see :doc:`/performance`). With an injected
        *http_client* it caps only the SDK's concurrency: the pool is
        yours.
    :param amount_format: How amounts are written on the wire. Default
        ``"integer"`` (``"100"``); ``"decimal2"`` sends ``"100.00"``.
        Valid: those two. Either way an amount must be whole kyat.
    :param clock: Returns the epoch milliseconds sent as each attempt's
        ``timestamp`` (taken afresh for every attempt). Default: the
        system clock. Valid: a callable; inject one in tests.
    :param middleware: Your own layers (see :class:`Middleware`); they run
        inside the retry layer, once per attempt, just before signing.
        Default ``()``. Valid: a sequence of callables. Cost: whatever
        they do, on every attempt and every reconciliation query.
    :param transport: What sends the calls. Default ``"httpx"``: one
        ``httpx.AsyncClient``. ``"aiohttp"`` sends through one
        ``aiohttp.ClientSession`` instead (the ``aiohttp`` extra; faster,
        see :doc:`/performance`). Valid: those two; ``"aiohttp"`` needs
        its extra and no *http_client*.
    :param max_answer_bytes: The most of an answer read, counted after
        decompression (a gateway answer is under 2 KB). Default
        ``1048576`` (1 MiB). Valid: an ``int`` from 256 to 2**30 (1 GiB).
        A bigger answer is an unknown outcome for a create and a
        :class:`~vexora_async.DecodingError` for a query. Cost: up to this
        much memory per call in flight.
    :param on_event: A callable, or a sequence of them, called with each
        :mod:`vexora_async.events` record: calls started and finished,
        attempts, retries, reconciliation queries, the ledger's part (see
        :doc:`/observability`). Default ``None``. A hook that raises is
        logged and ignored. Cost: hooks run inline, in each call's task:
        keep them fast.
    :param instrument: With the ``otel`` extra installed, trace and measure
        every call with OpenTelemetry. Default ``True``. Valid: ``True``
        or ``False``. Cost: while no OpenTelemetry provider is configured,
        one check per call; then a span and a few metric points per call.
    :param tracer_provider: The OpenTelemetry tracer provider of that
        automatic instrumentation. Default ``None``: the global one. Valid:
        refused without the ``otel`` extra, and when *on_event* holds an
        :class:`~vexora_async.otel.OpenTelemetryHook` (give it to that
        hook); ignored with ``instrument=False``.
    :param meter_provider: The OpenTelemetry meter provider of that
        automatic instrumentation. Default ``None``: the global one.
        Valid: as *tracer_provider*.
    """

    def __init__(
        self,
        merchant_no: str,
        app_secret: str | Secret,
        base_url: str,
        *,
        http_client: httpx.AsyncClient | None = None,
        timeout: float | httpx.Timeout = UNSET,
        max_retries: int = 2,
        deadline: float = 60.0,
        retry: RetryPolicy | None = None,
        ledger: Ledger | None = None,
        claim_lease: float | None = None,
        max_connections: int = UNSET,
        amount_format: AmountFormat = "integer",
        clock: Callable[[], int] = _epoch_ms,
        middleware: Sequence[Middleware] = (),
        transport: TransportName = "httpx",
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
        on_event: Callable[[Event], object]
        | Sequence[Callable[[Event], object]]
        | None = None,
        instrument: bool = True,
        tracer_provider: object | None = None,
        meter_provider: object | None = None,
    ) -> None:
        # First, before any other check can raise: from here on this frame
        # holds only the masked wrapper (error reporters record frame locals),
        # and a refused secret is dropped before the error leaves it.
        try:
            app_secret = as_secret(app_secret, rule=credential_problem)
        except BaseException:
            del app_secret
            raise
        self._merchant_no = check_credential("merchant_no", merchant_no)
        options = check_options(
            base_url=base_url,
            http_client=http_client,
            timeout=timeout,
            max_retries=max_retries,
            deadline=deadline,
            retry=retry,
            ledger=ledger,
            claim_lease=claim_lease,
            max_connections=max_connections,
            amount_format=amount_format,
            clock=clock,
            middleware=middleware,
            transport=transport,
            max_answer_bytes=max_answer_bytes,
            on_event=on_event,
            instrument=instrument,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
        )
        self._hooks = options.hooks
        self._hooks_wanted = options.hooks_wanted
        self._base_url = options.base_url
        self.retry_policy = options.retry_policy
        self.ledger: Ledger = ledger if ledger is not None else MemoryLedger()
        self.claim_lease = options.claim_lease
        self._codec = WireCodec.create(amount_format)
        self._timeout = options.timeout
        self._transport = options.transport
        max_connections = options.max_connections
        self._port = make_port(
            transport=self._transport,
            http_client=http_client,
            headers={
                "Content-Type": "application/json",
                "merchantNo": self._merchant_no,
                "User-Agent": USER_AGENT,
                # Only what the SDK inflates with a bound (see _transports._body).
                "Accept-Encoding": ACCEPT_ENCODING,
            },
            timeout=self._timeout or DEFAULT_TIMEOUT,
            max_connections=max_connections,
            max_answer_bytes=max_answer_bytes,
        )
        self._send = Exchange(
            port=self._port,
            # Not bound to a name: no plain local holds the secret here.
            secret=app_secret,
            clock=clock,
            codec=self._codec,
            urls={op: self._base_url + op.path for op in Operation},
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
        self._retry = RetryMiddleware(self.retry_policy, self._codec)
        self._handler = build_chain(
            (self._idempotency, self._retry, *middleware),
            self._send,
        )

    @property
    def max_retries(self) -> int:
        """Extra attempts after a transient failure, per call."""
        return self.retry_policy.max_retries

    def __repr__(self) -> str:
        # getattr: a half-built client (its __init__ raised) is shown too,
        # by tracebacks that capture locals.
        merchant_no = getattr(self, "_merchant_no", None)
        base_url = getattr(self, "_base_url", None)
        return f"VexoraClient(merchant_no={merchant_no!r}, base_url={base_url!r})"

    @property
    def base_url(self) -> str:
        """The gateway base URL, without a trailing slash."""
        return self._base_url

    @property
    def merchant_no(self) -> str:
        """The merchant number sent in the ``merchantNo`` header."""
        return self._merchant_no

    @property
    def transport(self) -> TransportName:
        """How the calls are sent: ``"httpx"`` (the default) or ``"aiohttp"``."""
        return self._transport

    @property
    def http_client(self) -> httpx.AsyncClient:
        """The shared httpx client every call goes through.

        With ``transport="aiohttp"`` there is none (the calls go through
        aiohttp directly): asking for it raises :class:`InvalidRequestError`.
        """
        if isinstance(self._port, HttpxPort):
            return self._port.client
        raise InvalidRequestError(
            "http_client",
            "this client sends through aiohttp (transport='aiohttp'); "
            "it has no httpx client",
        )

    def ledger_key(self, request: PayoutRequest | DepositRequest) -> str:
        """Return the key under which ``client.ledger`` records *request*.

        The merchant number, the call and the tradeNo (so merchants sharing
        a ledger keep their tradeNos apart). With it you can look up what
        the ledger knows of a payout,
        ``await client.ledger.get(client.ledger_key(request))``, or claim
        it in your own store, as :meth:`PostgresLedger.claim_payout` does.

        :param request: The payout or pay-in. Valid: a
            :class:`PayoutRequest` or a :class:`DepositRequest`; anything
            else raises :class:`~vexora_async.InvalidRequestError`.
        :returns: The key; nothing is read or written.
        """
        operation = _creating(request, "ledger_key")
        return self._idempotency.key(Call(operation, {}, request.trade_no))

    def ledger_fingerprint(self, request: PayoutRequest | DepositRequest) -> str:
        """Return the fingerprint ``client.ledger`` records with *request*'s key.

        A hash of the request's fields as this client sends them (amount,
        account, name...): a claim or entry under the same key with another
        fingerprint is another payout, refused with
        :class:`~vexora_async.ConflictingRequestError`.

        :param request: The payout or pay-in. Valid: as for
            :meth:`ledger_key`.
        :returns: The fingerprint; nothing is read or written.
        """
        _creating(request, "ledger_fingerprint")
        return fingerprint(self._codec.encode(request))

    # Self would need Python 3.11 or typing_extensions; one class is enough.
    async def __aenter__(self) -> VexoraClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if the SDK created it. Idempotent.

        Waits first for the ledger writes that cancelled calls left under
        way, so that no entry is left in flight by closing. An injected
        ``http_client`` and the ledger stay open: they are yours. A call
        made after this raises :class:`~vexora_async.ClientClosedError`.
        """
        self._send.closed = True
        await self._idempotency.drain()
        await self._port.aclose()

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
        :doc:`/retries`). What each error means for the money is in
        :doc:`/errors`.

        :param request: The payout. Store it before the first attempt: its
            tradeNo is the key to query or resolve it by. Valid: a
            :class:`PayoutRequest` (checked when built).
        :param timeout: This call's per-attempt limits, instead of the
            client's *timeout*. Default ``None``: the client's. Valid: as
            the client's.
        :param max_retries: This call's extra attempts after a transient
            failure. Default ``None``: the retry policy's (``2`` unless you
            set it). Valid: an ``int`` from 0 to 100. Cost: only within
            *deadline*.
        :param deadline: This call's deadline in seconds, every attempt,
            backoff and query included. Default ``None``: the retry
            policy's (``60.0`` unless you set it). Valid: over 0, at most
            86,400, and at least 10 s under the client's ``claim_lease``.
        :returns: The gateway's answer: the payout was accepted, and its
            status is usually still processing (``0015``).
        :raises ~vexora_async.RequestRejected: The gateway refused the
            payout (code ``8000``); nothing was paid.
        :raises ~vexora_async.ConflictingRequestError: The tradeNo was used
            for a different payout.
        :raises ~vexora_async.PayoutOutcomeUnknown: It may have been paid,
            and the SDK could not find out within the deadline: settle it
            later with :meth:`resolve_payout`, never as failed.
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
            Params(self._codec.encode(request)),
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

        A tradeNo whose create this client's ledger already holds as
        accepted is answered from the ledger, with no query: the create's
        outcome is known (use :meth:`get_payout` for the payout's status
        now). Otherwise it asks the gateway first (status query), whatever
        the retry policy says about reconciliation. If the gateway knows the
        tradeNo with this request's amount, that is the result, and nothing
        is sent.
        If it does not know it, the same request is sent again under the same
        tradeNo, unless the policy's ``resubmit`` is off (then the outcome
        stays unknown). Use it after
        :class:`~vexora_async.PayoutOutcomeUnknown`, for example from a
        periodic job, with the request you stored before the first attempt.

        Errors name ``operation="resolve_payout"``.

        :param request: The same request as the first attempt (same
            tradeNo, amount and account). Valid: a :class:`PayoutRequest`.
        :param timeout: This call's per-attempt limits, instead of the
            client's *timeout*. Default ``None``: the client's. Valid: as
            the client's.
        :param deadline: This call's deadline in seconds, every attempt,
            backoff and query included. Default ``None``: the retry
            policy's (``60.0`` unless you set it). Valid: over 0, at most
            86,400, and at least 10 s under the client's ``claim_lease``.
        :returns: The payout's result: found by the query, or accepted
            when sent again.
        :raises ~vexora_async.PayoutOutcomeUnknown: It still cannot tell
            within the deadline.
        :raises ~vexora_async.TradeNoCollision: The gateway holds the
            tradeNo for a different payout (another amount).
        :raises ~vexora_async.RequestRejected: Only when the gateway does
            not know the tradeNo and refused it again
            (``confirmed=True``).
        """
        if not isinstance(request, PayoutRequest):
            raise InvalidRequestError(None, "resolve_payout takes a PayoutRequest")
        return await self._call(
            Operation.CREATE_PAYOUT,
            Params(self._codec.encode(request)),
            request.trade_no,
            PayoutResult,
            timeout=timeout,
            deadline=deadline,
            resolve=True,
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

        :param trade_no: The payout's tradeNo. Valid: 1 to 64 printable
            ASCII characters without whitespace.
        :param timeout: This call's per-attempt limits, instead of the
            client's *timeout*. Default ``None``: the client's. Valid: as
            the client's.
        :param max_retries: This call's extra attempts after a transient
            failure. Default ``None``: the retry policy's (``2`` unless you
            set it). Valid: an ``int`` from 0 to 100. Cost: only within
            *deadline*.
        :param deadline: This call's deadline in seconds, every attempt,
            backoff and query included. Default ``None``: the retry
            policy's (``60.0`` unless you set it). Valid: over 0, at most
            86,400.
        :returns: The payout's state; :attr:`PayoutStatus.status` tells
            whether it is final.
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
        """Query the merchant's balance.

        :param timeout: This call's per-attempt limits, instead of the
            client's *timeout*. Default ``None``: the client's. Valid: as
            the client's.
        :param max_retries: This call's extra attempts after a transient
            failure. Default ``None``: the retry policy's (``2`` unless you
            set it). Valid: an ``int`` from 0 to 100. Cost: only within
            *deadline*.
        :param deadline: This call's deadline in seconds, every attempt,
            backoff and query included. Default ``None``: the retry
            policy's (``60.0`` unless you set it). Valid: over 0, at most
            86,400.
        :returns: The balance, in kyat.
        """
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
        """Create a pay-in (checkout); see :attr:`DepositResult.raw` for its URL.

        Recorded in the ledger like a payout, so calling again with the same
        request never creates it twice.

        :param request: The pay-in. Valid: a :class:`DepositRequest`.
        :param timeout: This call's per-attempt limits, instead of the
            client's *timeout*. Default ``None``: the client's. Valid: as
            the client's.
        :param max_retries: This call's extra attempts after a transient
            failure. Default ``None``: the retry policy's (``2`` unless you
            set it). Valid: an ``int`` from 0 to 100. Cost: only within
            *deadline*.
        :param deadline: This call's deadline in seconds, every attempt,
            backoff and query included. Default ``None``: the retry
            policy's (``60.0`` unless you set it). Valid: over 0, at most
            86,400, and at least 10 s under the client's ``claim_lease``.
        :returns: The gateway's answer; its checkout URL is in ``raw``.
        """
        if not isinstance(request, DepositRequest):
            raise InvalidRequestError(None, "create_deposit takes a DepositRequest")
        return await self._call(
            Operation.CREATE_DEPOSIT,
            Params(self._codec.encode(request)),
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
        """Query a pay-in's state by your tradeNo.

        :param trade_no: The pay-in's tradeNo. Valid: as for
            :meth:`get_payout`.
        :param timeout: This call's per-attempt limits, instead of the
            client's *timeout*. Default ``None``: the client's. Valid: as
            the client's.
        :param max_retries: This call's extra attempts after a transient
            failure. Default ``None``: the retry policy's (``2`` unless you
            set it). Valid: an ``int`` from 0 to 100. Cost: only within
            *deadline*.
        :param deadline: This call's deadline in seconds, every attempt,
            backoff and query included. Default ``None``: the retry
            policy's (``60.0`` unless you set it). Valid: over 0, at most
            86,400.
        :returns: The pay-in's state.
        """
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
        resolve: bool = False,
    ) -> T:
        if self._send.is_closed():
            # Before the ledger: a closed client claims nothing either.
            raise ClientClosedError(
                operation="resolve_payout" if resolve else operation.label,
                trade_no=trade_no,
            )
        if max_retries is not None:
            check_retries("max_retries", max_retries)
        budget = call_deadline(
            deadline,
            default=self.retry_policy.deadline,
            claim_lease=self.claim_lease,
            creates=operation.creates,
        )
        call = Call(
            operation,
            params,
            trade_no,
            timeout=as_timeout(timeout),
            deadline=asyncio.get_running_loop().time() + budget,
            max_retries=max_retries,
            resolve=resolve,
        )
        if self._hooks and (self._hooks_wanted is None or self._hooks_wanted()):
            return await self._traced(call, result_type)
        return _checked(call, await self._handler(call), result_type)

    async def _traced(self, call: Call, result_type: type[T]) -> T:
        """Run *call* with events at its edge (only when hooks are set)."""
        trace = Trace(self._hooks, call.label, call.trade_no)
        call = call.evolve(trace=trace)
        trace.emit(
            CallStarted(
                operation=call.label,
                trade_no=call.trade_no,
                merchant_no=self._merchant_no,
            )
        )
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            result = _checked(call, await self._handler(call), result_type)
        except BaseException as exc:
            error = exc
            raise
        finally:
            trace.emit(
                CallFinished(
                    operation=call.label,
                    trade_no=call.trade_no,
                    merchant_no=self._merchant_no,
                    outcome=call_outcome(error),
                    attempts=trace.attempts,
                    reconciled=trace.reconciled,
                    from_ledger=trace.from_ledger,
                    elapsed=time.perf_counter() - started,
                    gateway_code=trace.gateway_code,
                    error_type=None if error is None else type(error).__name__,
                )
            )
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

        A fixed pool of *concurrency* workers sends them through
        :meth:`create_payout`, each under the client's options. Outcomes
        come **in completion order**, not input order; each carries its
        request. No error stops the batch: each becomes an outcome of kind
        accepted, rejected, unknown (to settle later by
        :meth:`resolve_payout`) or error (not executed). Leaving the loop
        early or cancelling it cancels the workers;
        ``contextlib.aclosing`` makes that immediate::

            async with contextlib.aclosing(client.create_payouts(reqs)) as it:
                async for outcome in it:
                    ...

        :param requests: The payouts: any iterable or async iterable of
            :class:`PayoutRequest`, read lazily (a generator of 100,000
            requests keeps memory flat). Valid: an iterable or async
            iterable (anything else raises
            :class:`~vexora_async.InvalidRequestError`); an item in it that
            is not a :class:`PayoutRequest` becomes an outcome of kind
            error.
        :param concurrency: Payouts in flight at once (the workers).
            Default ``20``. Valid: an ``int`` from 1 to 10,000. Cost: one
            task per worker; past the client's ``max_connections``, more
            workers only queue inside the SDK.
        :param on_progress: Called with a :class:`BatchProgress` before
            each outcome is yielded. Default ``None``. Valid: a callable or
            ``None``. Cost: runs inline, between outcomes.
        :returns: An async generator of one :class:`PayoutOutcome` per
            request.
        """
        return create_payouts(
            self, requests, concurrency=concurrency, on_progress=on_progress
        )
