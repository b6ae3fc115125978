"""The app secret, held so that no repr, log or traceback shows it."""

from __future__ import annotations

from typing import Final


_MASK: Final = "<secret>"


class Secret:
    """Holds the app secret so that no repr, log or traceback shows it.

    Pass one instead of a plain ``str`` wherever the SDK takes the app
    secret, for example ``app_secret=Secret(os.environ["VEXORA_APP_SECRET"])``:
    then no frame of the SDK holds the secret as a plain local variable, and
    error reporters that record frame locals (Sentry does by default) see
    ``<secret>``. :attr:`value` is the secret itself.
    """

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return _MASK

    __str__ = __repr__
