"""Masks for personal data in logs and reprs: account numbers and names."""

from __future__ import annotations

import re
from collections.abc import Mapping


_DIGIT_RUN = re.compile(r"\d{6,}")


def mask_account(value: str) -> str:
    """Keep the last four characters of an account number: ``****9012``."""
    return "****" + value[-4:] if len(value) > 4 else "****"  # noqa: PLR2004


def mask_name(value: str) -> str:
    """Keep the first character of a name: ``K***``."""
    return value[:1] + "***" if value else ""


def mask_digit_runs(text: str) -> str:
    """Mask every run of six or more digits in free text, keeping its tail."""
    return _DIGIT_RUN.sub(lambda m: mask_account(m.group()), text)


#: Wire fields of a request that carry personal data, and their masks.
_PERSONAL_FIELDS = {"bankNumber": mask_account, "name": mask_name}
#: Never shown at all: a sign proves whatever it signs.
_SIGN_FIELD = "sign"


def mask_params(params: object) -> str:
    """Render a request's wire fields for a repr: account and name masked.

    ``bankNumber`` keeps its last four characters, ``name`` its first, and
    a ``sign`` is replaced by ``'<hidden>'``. Anything that is not a
    mapping is shown only by its type.
    """
    if not isinstance(params, Mapping):
        return f"<{type(params).__name__}>"
    shown = {}
    for key, value in params.items():
        if key == _SIGN_FIELD:
            shown[key] = "<hidden>"
        elif key in _PERSONAL_FIELDS and isinstance(value, str):
            shown[key] = _PERSONAL_FIELDS[key](value)
        elif key in _PERSONAL_FIELDS:
            shown[key] = "<hidden>"
        else:
            shown[key] = value
    return repr(shown)


class Params(dict):  # type: ignore[type-arg]  # str to str, as the wire has it
    """A request's wire fields whose ``repr`` masks the account and name.

    Error reporters record frame locals by their ``repr``: the dicts that
    carry a payout through the SDK show ``****9012`` and ``K***`` there.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return mask_params(self)


class Payload(bytes):
    """Wire bytes (a signed request, an answer) whose ``repr`` shows their size.

    The body of a payout holds the account, the name and the sign; an
    answer may echo them. Frame locals recorded by error reporters show
    ``<payload 312 bytes>`` instead.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<payload {len(self)} bytes>"
