"""The gateway's five calls: their paths, and what each answers with."""

from __future__ import annotations

import enum

from ._models import Balance, DepositResult, DepositStatus, PayoutResult, PayoutStatus
from .exceptions import OutcomeUnknown, PayoutOutcomeUnknown


class Operation(enum.Enum):
    """One of the gateway's calls.

    :attr:`creates` marks the calls that create a transaction: for those, an
    answer we could not read is an unknown outcome, not a failure.
    """

    CREATE_PAYOUT = ("create_payout", "/v1/vexora/disbursements", True, PayoutResult)
    GET_PAYOUT = ("get_payout", "/v1/vexora/queryPayOutResult", False, PayoutStatus)
    CREATE_DEPOSIT = ("create_deposit", "/v1/vexora/deposits", True, DepositResult)
    GET_DEPOSIT = ("get_deposit", "/v1/vexora/queryPayInResult", False, DepositStatus)
    GET_BALANCE = ("get_balance", "/v1/vexora/queryBalance", False, Balance)

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


def outcome_unknown(
    operation: Operation, trade_no: str | None, reason: str
) -> OutcomeUnknown:
    """Build the unknown-outcome error of a create, saying what to do next."""
    kind = (
        PayoutOutcomeUnknown if operation is Operation.CREATE_PAYOUT else OutcomeUnknown
    )
    return kind(
        f"{reason}; it may have been executed. Resolve it under the same tradeNo "
        "(query it, or call again with the same request) and never resend it "
        "under a new one",
        trade_no=trade_no or "",
        operation=operation.label,
    )
