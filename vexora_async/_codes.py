"""The gateway's codes: one home for every literal the wire uses.

Two families, which share the text ``"0000"`` and so cannot share one enum:
the envelope's ``code`` is about the *request*; ``data.status`` is about the
*money*. Nothing else in the package spells these strings out.
"""

from __future__ import annotations

import enum


class ResponseCode(str, enum.Enum):
    """The envelope's ``code``: whether the gateway took the request."""

    #: The request was accepted (the money may still be processing).
    OK = "0000"
    #: "System exception": the docs say never to treat it as a failure.
    SYSTEM_EXCEPTION = "5000"
    #: "Request failed": a refusal of this request (for a create, nothing
    #: was made; for a query, only the query failed).
    REJECTED = "8000"


class StatusCode(str, enum.Enum):
    """``data.status``: where the transaction's money stands."""

    SUCCESS = "0000"
    #: Pay-ins only: less than the ordered amount moved.
    PARTIAL = "0001"
    PROCESSING = "0015"
    FAILED = "00029"
    #: From a sister gateway on the same template: payee's daily limit.
    DAILY_LIMIT_REACHED = "0100019"
    #: From the same sister gateway: "unknown error", not a failure.
    UNKNOWN_ERROR = "00032"
