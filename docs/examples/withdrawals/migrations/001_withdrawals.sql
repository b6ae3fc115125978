-- The withdrawals, their state transitions, and the callbacks' inbox.
-- Applied once per deployment by `python -m withdrawals migrate`.

CREATE TABLE withdrawals (
    id                bigserial PRIMARY KEY,
    user_id           text NOT NULL,
    -- The client's Idempotency-Key, unique per user, and a hash of the body
    -- it came with: the same key with another body is refused (409).
    idempotency_key   text NOT NULL,
    request_hash      text NOT NULL,
    trade_no          text NOT NULL UNIQUE,
    amount            numeric(15, 0) NOT NULL CHECK (amount > 0),
    bank_code         text NOT NULL,
    bank_number       text NOT NULL,
    account_name      text NOT NULL,
    -- Stored with the row: the payout's fingerprint includes it, so the
    -- reconciler must send exactly what the sender sent.
    notify_url        text NOT NULL,
    state             text NOT NULL DEFAULT 'new' CHECK (state IN (
                          'new', 'sending', 'accepted', 'unknown',
                          'paid', 'failed', 'escalated')),
    -- Bumped by every transition: an update names the version it read.
    version           integer NOT NULL DEFAULT 0,
    attempts          integer NOT NULL DEFAULT 0,
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    platform_trade_no text,
    failure_code      text,
    failure_message   text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, idempotency_key)
);

-- The sender's queue: the row is the outbox.
CREATE INDEX withdrawals_new_idx ON withdrawals (next_attempt_at, id)
    WHERE state = 'new';
-- The reconciler's work.
CREATE INDEX withdrawals_open_idx ON withdrawals (updated_at)
    WHERE state IN ('sending', 'accepted', 'unknown', 'escalated');

CREATE TABLE withdrawal_events (
    id            bigserial PRIMARY KEY,
    withdrawal_id bigint NOT NULL REFERENCES withdrawals (id),
    from_state    text,
    to_state      text NOT NULL,
    version       integer NOT NULL,
    source        text NOT NULL
                  CHECK (source IN ('api', 'sender', 'reconciler', 'callback')),
    detail        text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX withdrawal_events_withdrawal_idx ON withdrawal_events (withdrawal_id);

CREATE TABLE callback_inbox (
    id                bigserial PRIMARY KEY,
    -- The SDK's Notification.dedup_key, one per (kind, tradeNo, status):
    -- the gateway's redeliveries of one notification are stored once.
    dedupe_key        text NOT NULL UNIQUE,
    trade_no          text NOT NULL,
    status            text NOT NULL,
    amount            numeric NOT NULL,
    platform_trade_no text,
    body              text NOT NULL,
    received_at       timestamptz NOT NULL DEFAULT now(),
    processed_at      timestamptz,
    outcome           text
);
CREATE INDEX callback_inbox_pending_idx ON callback_inbox (id)
    WHERE processed_at IS NULL;
