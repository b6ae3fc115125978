"""The gateway's MD5 ``sign``: pure functions, no I/O.

The rule, as the gateway's API documentation gives it (see "Gateway
assumptions" in the docs): drop ``sign``, empty values
(``None``, ``""``) and nested objects or arrays; sort the remaining keys by
ordinal order; concatenate ``key=value`` with no separator; append the app
secret; MD5 the UTF-8 bytes; lowercase hex.
"""

from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal
from typing import TYPE_CHECKING

from ._secret import as_secret
from .exceptions import InvalidRequestError


if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._secret import Secret


SIGN_FIELD = "sign"


def _render(key: str, value: object) -> str | None:
    """Render one value as the gateway's Java side prints it, or None to skip."""
    if value is None or isinstance(value, (dict, list, tuple)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value or None
    if isinstance(value, (int, Decimal)):
        return str(value)
    # A float's text is ambiguous (1e-05 vs 0.00001); callers keep numbers as
    # the text they arrived as (see notifications._parse) or as Decimal.
    raise InvalidRequestError(
        key, f"cannot sign a value of type {type(value).__name__}"
    )


def canonical_string(params: Mapping[str, object]) -> str:
    """Return the string that is signed, *without* the secret.

    Keys are sorted by code point, which for the gateway's ASCII keys is the
    Java ``TreeMap`` order the gateway uses.

    :param params: The flat body, as for :func:`sign`.
    :returns: ``key=value`` pairs joined with nothing between them.
    """
    parts = []
    for key in sorted(params):
        if key == SIGN_FIELD:
            continue
        value = params[key]
        # Text, the SDK's own requests' only kind of value: rendered as is.
        rendered = (value or None) if type(value) is str else _render(key, value)
        if rendered is not None:
            parts.append(f"{key}={rendered}")
    return "".join(parts)


def sign(params: Mapping[str, object], app_secret: str | Secret) -> str:
    """Compute the ``sign`` of a request or callback body.

    MD5 of :func:`canonical_string` followed by the secret, as lowercase hex.

    :param params: The flat body; an existing ``sign`` key is ignored.
        Valid: values that are strings, ints, ``Decimal`` or ``bool``
        (``true``/``false``); ``None``, ``""``, dicts, lists and tuples are
        left out, as the gateway does. A ``float`` (its text is ambiguous)
        or a lone surrogate raises
        :class:`~vexora_async.InvalidRequestError`.
    :param app_secret: A ``str`` or a :class:`~vexora_async.Secret`.
        Valid: non-empty text.
    :returns: The 32-character lowercase hex digest.
    """
    try:
        secret = as_secret(app_secret)
    finally:  # this frame holds only the masked wrapper from here on
        del app_secret
    return sign_checked(params, secret)


def sign_checked(params: Mapping[str, object], secret: Secret) -> str:
    """Do what :func:`sign` does, with a secret the caller already checked."""
    try:
        data = canonical_string(params).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequestError(
            None, "a value to sign is not valid Unicode (a lone surrogate)"
        ) from None
    # Fed in two parts (MD5 of the concatenation), so that no local
    # variable ever holds the secret in clear.
    digest = hashlib.md5(data, usedforsecurity=False)
    digest.update(secret.value.encode("utf-8"))
    return digest.hexdigest()


def verify(
    params: Mapping[str, object], app_secret: str | Secret, signature: object
) -> bool:
    """Tell whether *signature* is the valid ``sign`` of *params*.

    Constant-time over bytes. Only the exact lowercase hex digest is valid:
    the gateway documents lowercase, so an uppercase or padded sign is a
    different sign.

    :param params: The flat body, as for :func:`sign`.
    :param app_secret: A ``str`` or a :class:`~vexora_async.Secret`.
    :param signature: The ``sign`` received. Anything but a ``str`` (a
        missing sign, a number) is simply not valid.
    :returns: ``True`` only for the exact sign.
    """
    try:
        secret = as_secret(app_secret)
    finally:
        del app_secret
    if not isinstance(signature, str):
        return False
    try:
        received = signature.encode("ascii")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(sign(params, secret).encode("ascii"), received)
