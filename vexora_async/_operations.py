"""The gateway's five calls: paths, result types, and what each create needs.

For a create, the table also knows its status query (how reconciliation
finds out what happened) and the error that says its outcome is unknown.
"""

from __future__ import annotations

import enum

from ._models import Balance, DepositResult, DepositStatus, PayoutResult, PayoutStatus
from .exceptions import OutcomeUnknown, PayoutOutcomeUnknown


class Operation(enum.Enum):
    """One of the gateway's calls.

    :attr:`creates` marks the calls that create a transaction: for those, an
    answer we could not read is an unknown outcome, not a failure.
    :attr:`status_query` is a create's status query (``None`` for the
    others) and :attr:`unknown_error` the error class of its unknown
    outcome.
    """

    CREATE_PAYOUT = ("create_payout", "/v1/vexora/disbursements", True, PayoutResult)
    GET_PAYOUT = ("get_payout", "/v1/vexora/queryPayOutResult", False, PayoutStatus)
    CREATE_DEPOSIT = ("create_deposit", "/v1/vexora/deposits", True, DepositResult)
    GET_DEPOSIT = ("get_deposit", "/v1/vexora/queryPayInResult", False, DepositStatus)
    GET_BALANCE = ("get_balance", "/v1/vexora/queryBalance", False, Balance)

    status_query: Operation | None
    unknown_error: type[OutcomeUnknown]

    def __init__(
        self,
        label: str,
        path: str,
        creates: bool,  # noqa: FBT001 - enum values are positional tuples
        result_type: type,
    ) -> None:
        self.label = label
        self.path = path
        self.creates = creates
        self.result_type = result_type
        self.status_query = None
        self.unknown_error = OutcomeUnknown


Operation.CREATE_PAYOUT.status_query = Operation.GET_PAYOUT
Operation.CREATE_PAYOUT.unknown_error = PayoutOutcomeUnknown
Operation.CREATE_DEPOSIT.status_query = Operation.GET_DEPOSIT


def outcome_unknown(
    operation: Operation, trade_no: str | None, reason: str, *, label: str | None = None
) -> OutcomeUnknown:
    """Build the unknown-outcome error of a create, saying what to do next.

    *label* overrides the operation's name in the error (``resolve_payout``
    runs the create's machinery under its own name).
    """
    return operation.unknown_error(
        f"{reason}; it may have been executed. Resolve it under the same tradeNo "
        "(client.resolve_payout with the same request) and never resend it "
        "under a new one",
        trade_no=trade_no or "",
        operation=label or operation.label,
    )
