"""The app secret and personal data stay out of reprs and captured frame locals.

Error reporters (Sentry by default) record the local variables of every
frame of a traceback, by their repr. These tests format tracebacks the way
they do, with ``traceback.TracebackException(..., capture_locals=True)``.
"""

from __future__ import annotations

import logging
import pickle
import traceback
from typing import Any

import httpx
import pytest
from vexora_async import (
    InvalidRequestError,
    MalformedNotification,
    Notification,
    NotificationReceiver,
    PayoutOutcomeUnknown,
    Secret,
    SignatureError,
    parse_notification,
    sign,
)
from vexora_async._middleware import Call
from vexora_async._operations import Operation
from vexora_async._secret import as_secret
from vexora_async._signer import verify
from vexora_async.notifications._parse import check_sign, describe

from tests.helpers import (
    CALLBACK_BODY,
    CALLBACK_FIELDS,
    CALLBACK_SIGN,
    ONE_EXCHANGE,
    SECRET,
    callback,
    make_payout,
    mock_client,
)


ACCOUNT = "3560123456789012"
NAME = "Ko Min Thu"
#: A payout callback that echoes the beneficiary, as some gateways do.
ECHOING = {"bankCode": "KBZPAY", "bankNumber": ACCOUNT, "name": NAME}


def formatted(error: BaseException) -> str:
    """Format *error* with every frame's locals, as an error reporter does."""
    return "".join(
        traceback.TracebackException.from_exception(error, capture_locals=True).format()
    )


def assert_clean(text: str) -> None:
    """Neither the secret nor the full account or name is in *text*."""
    assert SECRET not in text
    assert ACCOUNT not in text
    assert NAME not in text


def raised(call: Any) -> BaseException:
    """Return what *call* raised."""
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - any error is what we look at
        return exc
    pytest.fail("nothing was raised")


# -- the wrapper -----------------------------------------------------------------


def test_secret_never_shows() -> None:
    """repr, str and f-strings show <secret>; pickling is refused."""
    secret = Secret(SECRET)
    assert repr(secret) == str(secret) == f"{secret}" == "<secret>"
    assert secret.value == SECRET
    with pytest.raises(TypeError, match="not pickled"):
        pickle.dumps(secret)


@pytest.mark.parametrize("value", ["", None, b"bytes", 7, Secret("")])
def test_as_secret_refuses_without_echoing(value: object) -> None:
    """A wrong secret is refused naming the field, never showing the value."""
    with pytest.raises(InvalidRequestError) as info:
        as_secret(value, field="app_secret")
    assert info.value.field == "app_secret"
    assert_clean(formatted(info.value))


def test_a_secret_with_a_lone_surrogate_is_refused_unseen() -> None:
    """An unencodable secret is refused, and no frame shows it."""
    bad = SECRET + "\ud800"
    error = raised(lambda: parse_notification(CALLBACK_BODY, bad))
    assert isinstance(error, InvalidRequestError)
    text = formatted(error)
    assert "app_secret" in text
    # The lambda's own frame holds it (our caller's); ours do not.
    ours = text.split("in parse_notification", 1)[1]
    assert SECRET not in ours


def test_the_wrapper_is_accepted_wherever_the_secret_is() -> None:
    """A plain str and a Secret give the same results everywhere."""
    secret = Secret(SECRET)
    assert sign(CALLBACK_FIELDS, secret) == sign(CALLBACK_FIELDS, SECRET)
    assert sign(CALLBACK_FIELDS, secret) == CALLBACK_SIGN
    assert verify(CALLBACK_FIELDS, secret, CALLBACK_SIGN)
    check_sign({**CALLBACK_FIELDS, "sign": CALLBACK_SIGN}, secret)
    assert parse_notification(CALLBACK_BODY, secret) == parse_notification(
        CALLBACK_BODY, SECRET
    )
    assert describe(CALLBACK_BODY, secret)[1] == CALLBACK_SIGN


async def test_the_receiver_takes_the_wrapper() -> None:
    """A receiver built from a Secret acknowledges the vector."""

    async def handler(notification: Notification, *, already_handled: bool) -> None:
        del notification, already_handled

    receiver = NotificationReceiver(Secret(SECRET), handler)
    assert (await receiver.respond(CALLBACK_BODY)).acknowledged
    assert isinstance(receiver._app_secret, Secret)


# -- repr(Call) --------------------------------------------------------------------


def test_call_repr_masks_account_and_name_and_hides_the_sign() -> None:
    """A middleware that logs its call shows ****9012 and K***, never a sign."""
    call = Call(
        Operation.CREATE_PAYOUT,
        {
            "tradeNo": "PO000000004567",
            "bankNumber": ACCOUNT,
            "name": NAME,
            "amount": "100",
            "sign": CALLBACK_SIGN,
        },
        trade_no="PO000000004567",
    )
    text = repr(call)
    assert_clean(text)
    assert CALLBACK_SIGN not in text
    assert "****9012" in text
    assert "'K***'" in text
    assert "PO000000004567" in text
    assert "'amount': '100'" in text
    # The call itself is unchanged: only its repr masks.
    assert call.params["bankNumber"] == ACCOUNT


def test_call_repr_of_odd_params() -> None:
    """Short or non-string values and non-mappings are masked too."""
    assert "<hidden>" in repr(Call(Operation.CREATE_PAYOUT, {"name": 7}))  # type: ignore[dict-item]
    assert "'****'" in repr(Call(Operation.CREATE_PAYOUT, {"bankNumber": "12"}))
    assert "<list>" in repr(Call(Operation.GET_BALANCE, [ACCOUNT]))  # type: ignore[arg-type]


# -- tracebacks formatted with their frames' locals ------------------------------


@pytest.mark.parametrize(
    ("body", "error_type"),
    [
        (callback(ECHOING, secret="wrong-secret"), SignatureError),
        (callback({**ECHOING, "amount": "ten"}), MalformedNotification),
        (callback(ECHOING, drop=("tradeNo",)), MalformedNotification),
        (b'{"bankNumber": "' + ACCOUNT.encode() + b'", "name": "Ko Min Thu",', None),
        (
            b'{"bankNumber": "' + ACCOUNT.encode() + b'", "name": "Ko Min Thu"}\xff',
            None,
        ),
    ],
    ids=["bad-sign", "bad-amount", "missing-field", "bad-json", "bad-utf8"],
)
def test_parse_notification_tracebacks_hold_no_secret_or_personal_data(
    body: bytes, error_type: type[Exception] | None
) -> None:
    """A refusal formatted with locals shows neither secret, account nor name."""
    error = raised(lambda: parse_notification(body, SECRET, kind="payout"))
    assert isinstance(error, error_type or MalformedNotification)
    text = formatted(error)
    assert_clean(text.replace(repr(body), "<the caller's body>"))
    assert "parse_notification" in text


def test_a_refusal_keeps_its_cause_for_the_reason() -> None:
    """The JSON error stays the cause (without its frames)."""
    error = raised(lambda: parse_notification(b"{", SECRET))
    assert isinstance(error.__cause__, ValueError)
    assert error.__cause__.__traceback__ is None


async def test_receiver_handler_failure_logged_without_secret_or_personal_data(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The handler's failure, as logged with its traceback, is clean."""

    async def handler(notification: Notification, *, already_handled: bool) -> None:
        del already_handled
        msg = f"database is down for {notification.trade_no}"
        raise RuntimeError(msg)

    caplog.set_level(logging.ERROR, logger="vexora_async.notifications")
    receiver = NotificationReceiver(SECRET, handler, kind="payout")
    response = await receiver.respond(callback(ECHOING))
    assert response.status_code == 500
    [record] = [r for r in caplog.records if r.exc_info]
    assert record.exc_info is not None
    error = record.exc_info[1]
    assert error is not None
    text = formatted(error)
    assert "database is down" in text
    assert_clean(text)
    assert_clean(caplog.text)


async def test_receiver_refusals_over_http_log_nothing_personal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Refused bodies that echo the beneficiary log neither account nor name."""
    caplog.set_level(logging.DEBUG, logger="vexora_async")
    receiver = NotificationReceiver(SECRET, _ok, kind="payout", body_timeout=1)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=receiver), base_url="http://127.0.0.1"
    ) as http:
        for body in (
            callback(ECHOING, secret="wrong"),
            callback({**ECHOING, "amount": ACCOUNT + "x"}),
        ):
            response = await http.post("/notify", content=body)
            assert response.status_code in {400, 403}
    assert_clean(caplog.text)


async def _ok(notification: Notification, *, already_handled: bool) -> None:
    del notification, already_handled


async def _unknown_payout_traceback() -> str:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    async with mock_client(timeout, retry=ONE_EXCHANGE) as client:
        with pytest.raises(PayoutOutcomeUnknown) as info:
            await client.create_payout(make_payout(bank_number=ACCOUNT, name=NAME))
    return formatted(info.value)


async def test_client_call_traceback_holds_no_secret() -> None:
    """An unknown outcome raised through the client formats with locals, no secret."""
    text = await _unknown_payout_traceback()
    assert "PayoutOutcomeUnknown" in text
    assert SECRET not in text
    # The call's own repr is masked.
    assert "'bankNumber': '****9012'" in text


async def test_client_call_traceback_holds_no_personal_data() -> None:
    """The same traceback shows neither the full account nor the name."""
    text = await _unknown_payout_traceback()
    assert NAME not in text
    assert ACCOUNT not in text
