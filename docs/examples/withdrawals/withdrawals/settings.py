"""Settings, from the environment only (secrets never on a command line)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def _float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@dataclass(frozen=True)
class Settings:
    """Everything the processes need; :meth:`from_env` reads it."""

    database_url: str
    base_url: str
    merchant_no: str
    app_secret: str = field(repr=False)
    #: Where the gateway sends payout callbacks: this service's public URL.
    notify_url: str = "http://127.0.0.1:8000/vexora/payouts/notify"
    host: str = "127.0.0.1"
    port: int = 8000
    #: The sender's and reconciler's /metrics port (0: none).
    metrics_port: int = 0
    #: Rows a sender claims per transaction, and payouts it sends at once.
    batch: int = 20
    #: Seconds a sender or reconciler sleeps when it found no work.
    poll_interval: float = 0.2
    #: Seconds a payout call may take, every attempt included.
    deadline: float = 60.0
    #: Seconds a claim of a dead sender blocks its tradeNo (None: the
    #: SDK's default, twice the deadline plus a minute).
    claim_lease: float | None = None
    #: A row ``sending`` or ``accepted`` untouched this long is resolved by
    #: the reconciler: longer than a call (its sender may still be on it).
    stale_after: float = 300.0
    #: A row still open this long after it was created is escalated.
    escalate_after: float = 3600.0
    #: Seconds before a row whose send reached nothing is sent again.
    retry_after: float = 10.0

    @classmethod
    def from_env(cls) -> Settings:
        """Read the settings from the environment."""
        lease = os.environ.get("WITHDRAWALS_CLAIM_LEASE")
        return cls(
            database_url=os.environ["DATABASE_URL"],
            base_url=os.environ["VEXORA_BASE_URL"],
            merchant_no=os.environ["VEXORA_MERCHANT_NO"],
            app_secret=os.environ["VEXORA_APP_SECRET"],
            notify_url=os.environ.get("WITHDRAWALS_NOTIFY_URL", cls.notify_url),
            host=os.environ.get("WITHDRAWALS_HOST", cls.host),
            port=_int("WITHDRAWALS_PORT", cls.port),
            metrics_port=_int("WITHDRAWALS_METRICS_PORT", cls.metrics_port),
            batch=_int("WITHDRAWALS_BATCH", cls.batch),
            poll_interval=_float("WITHDRAWALS_POLL_INTERVAL", cls.poll_interval),
            deadline=_float("WITHDRAWALS_DEADLINE", cls.deadline),
            claim_lease=None if lease is None else float(lease),
            stale_after=_float("WITHDRAWALS_STALE_AFTER", cls.stale_after),
            escalate_after=_float("WITHDRAWALS_ESCALATE_AFTER", cls.escalate_after),
            retry_after=_float("WITHDRAWALS_RETRY_AFTER", cls.retry_after),
        )
