-- The SDK's PostgresLedger table (PostgresLedger.schema() prints it): the
-- senders claim a payout's tradeNo in the transaction that moves its row.

CREATE TABLE vexora_ledger (
    key         text PRIMARY KEY,
    state       text NOT NULL
                CHECK (state IN ('in_flight', 'unknown', 'accepted', 'rejected')),
    fingerprint text NOT NULL,
    token       text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    data        text,
    code        text,
    msg         text,
    prior       text
);
CREATE INDEX vexora_ledger_settled_idx ON vexora_ledger (updated_at)
    WHERE state IN ('accepted', 'rejected');
