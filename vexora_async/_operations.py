"""The gateway's five calls: their paths, and what each answers with."""

from __future__ import annotations

import enum

from ._models import Balance, DepositResult, DepositStatus, PayoutResult, PayoutStatus


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
