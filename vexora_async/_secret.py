"""The app secret in a masked holder, and what the SDK takes as a credential.

Error reporters (Sentry records every frame's local variables by default)
and ``traceback.TracebackException(..., capture_locals=True)`` show the
``repr`` of each local. A frame that holds the secret as a plain ``str``
prints it; a frame that holds a :class:`Secret` prints ``<secret>``. So
every public entry point that takes the secret wraps it at once with
:func:`as_secret` and deletes its own ``str`` parameter.

Both rules for what is taken live here: :func:`secret_problem` for the
secret given to ``sign``, ``verify``, the notification parsers and the
receiver, and the stricter :func:`credential_problem` for the client's
``merchant_no`` and ``app_secret``. They are kept apart, each with its own
messages: one rule for both would refuse secrets that one side takes today,
or start taking ones the client refuses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from ._validation import encodable
from .exceptions import InvalidRequestError


if TYPE_CHECKING:
    from collections.abc import Callable


class Secret:
    """Holds the app secret so that no repr, log or traceback shows it.

    ``repr()`` and ``str()`` give ``<secret>``; the value is
    :attr:`value`. Pass one anywhere the SDK takes an ``app_secret``.
    Build it from the environment, never from a literal in your code::

        secret = Secret(os.environ["VEXORA_APP_SECRET"])
    """

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__

    def __reduce__(self) -> str:
        # Never written into a pickle (a task queue, a cached exception).
        msg = "a Secret is not pickled; pass it to the other process another way"
        raise TypeError(msg)


def secret_problem(value: object) -> str | None:
    """Say what is wrong with a secret to sign or verify with, or ``None``.

    Any non-empty text UTF-8 can encode: the sign is MD5 over its bytes.
    """
    if not isinstance(value, str) or not value:
        return "must be a non-empty string (or a Secret holding one)"
    if not encodable(value):
        return "must be valid Unicode (it holds a lone surrogate)"
    return None


#: The longest ``merchant_no`` or ``app_secret`` the client takes.
MAX_CREDENTIAL = 1024


def credential_problem(value: object) -> str | None:
    """Say what is wrong with a client credential, or ``None``.

    The client's ``merchant_no`` and ``app_secret``: printable ASCII, with
    no edge spaces, at most :data:`MAX_CREDENTIAL` characters. A message
    never repeats the value.
    """
    if not isinstance(value, str) or not value:
        return "must be a non-empty str"
    if len(value) > MAX_CREDENTIAL:
        return f"is longer than {MAX_CREDENTIAL} characters"
    if not value.isascii() or not value.isprintable() or value != value.strip():
        return "must be printable ASCII with no edge spaces"
    return None


def as_secret(
    value: object,
    *,
    field: str = "app_secret",
    rule: Callable[[object], str | None] = secret_problem,
) -> Secret:
    """Return *value* as a :class:`Secret` if its text passes *rule*.

    *value* is a ``str`` or a :class:`Secret` (returned as it is); *rule*
    passes nothing but a ``str``. Raises
    :class:`~vexora_async.InvalidRequestError` naming *field*, with
    *rule*'s reason. The refused value itself is never part of the error,
    nor left in this frame; the caller deletes its own reference.
    """
    text = value.value if isinstance(value, Secret) else value
    # The rule says what is wrong and returns: raising from its frame would
    # hand the plain text to any error reporter that records frame locals.
    problem = rule(text)
    if problem is None:
        return value if isinstance(value, Secret) else Secret(cast("str", text))
    del value, text
    raise InvalidRequestError(field, problem)


def check_credential(field: str, value: object) -> str:
    """Return *value*, a client credential that is not secret (``merchant_no``).

    Raises :class:`~vexora_async.InvalidRequestError` naming *field*; the
    secret goes through :func:`as_secret` with :func:`credential_problem`.
    """
    problem = credential_problem(value)
    if problem is not None:
        raise InvalidRequestError(field, problem)
    return value  # type: ignore[return-value]  # a str: checked just above
