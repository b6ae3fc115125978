"""The app secret in a masked holder: no repr, log or traceback shows it.

Error reporters (Sentry records every frame's local variables by default)
and ``traceback.TracebackException(..., capture_locals=True)`` show the
``repr`` of each local. A frame that holds the secret as a plain ``str``
prints it; a frame that holds a :class:`Secret` prints ``<secret>``. So
every public entry point that takes the secret wraps it at once with
:func:`as_secret` and deletes its own ``str`` parameter.
"""

from __future__ import annotations

from .exceptions import InvalidRequestError


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


def as_secret(value: object, *, field: str = "app_secret") -> Secret:
    """Return *value* as a :class:`Secret`; refuse an empty or non-string one.

    Raises :class:`~vexora_async.InvalidRequestError` naming *field*. The
    refused value itself is never part of the error, nor left in this frame.
    """
    text = value.value if isinstance(value, Secret) else value
    if isinstance(text, str) and text and _encodable(text):
        return value if isinstance(value, Secret) else Secret(text)
    problem = (
        "must be valid Unicode (it holds a lone surrogate)"
        if isinstance(text, str) and text
        else "must be a non-empty string (or a Secret holding one)"
    )
    del value, text
    raise InvalidRequestError(field, problem)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
