-- One row per model invocation, and the append-only credit ledger whose legs
-- (reserve, settle, expire) tie each credit movement to its run.

CREATE TABLE farmops.ai_runs (
    farm_id uuid NOT NULL REFERENCES farmops.farms (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    user_id text NOT NULL CHECK (char_length(user_id) BETWEEN 1 AND 256),
    feature text NOT NULL CHECK (char_length(feature) BETWEEN 1 AND 100),
    model text NOT NULL CHECK (char_length(model) BETWEEN 1 AND 200),
    status text NOT NULL DEFAULT 'reserved'
    CHECK (status IN ('reserved', 'running', 'succeeded', 'failed', 'expired')),
    credits_reserved integer NOT NULL CHECK (credits_reserved > 0),
    credits_actual integer CHECK (credits_actual >= 0),
    -- What the run cost beyond what the farm could still pay at settle time.
    credits_shortfall integer NOT NULL DEFAULT 0 CHECK (credits_shortfall >= 0),
    input_tokens integer CHECK (input_tokens >= 0),
    output_tokens integer CHECK (output_tokens >= 0),
    latency_ms integer CHECK (latency_ms >= 0),
    input_summary text CHECK (char_length(input_summary) <= 4000),
    output_summary text CHECK (char_length(output_summary) <= 4000),
    error text CHECK (char_length(error) <= 4000),
    -- The caller's idempotency key: the same key returns the same run.
    request_id text CHECK (char_length(request_id) BETWEEN 1 AND 200),
    reserved_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    settled_at timestamptz,
    PRIMARY KEY (farm_id, id),
    UNIQUE (farm_id, request_id),
    CHECK ((status IN ('succeeded', 'failed', 'expired')) = (settled_at IS NOT NULL)),
    -- A settled run knows what it cost; a live or expired one does not.
    CHECK ((status IN ('succeeded', 'failed')) = (credits_actual IS NOT NULL)),
    CHECK (credits_shortfall <= coalesce(credits_actual, 0)),
    CHECK (expires_at > reserved_at)
);
-- The expirer's scan (every farm) and the outstanding-reservation sum of one farm.
CREATE INDEX ai_runs_live_expiry_idx ON farmops.ai_runs (expires_at)
WHERE status IN ('reserved', 'running');
CREATE INDEX ai_runs_live_farm_idx ON farmops.ai_runs (farm_id)
WHERE status IN ('reserved', 'running');
COMMENT ON TABLE farmops.ai_runs IS
'One row per model invocation: who, what feature and model, tokens, latency, credits reserved and actual, status.';
COMMENT ON COLUMN farmops.ai_runs.status IS
'reserved -> running -> succeeded | failed | expired; the last three are terminal.';
COMMENT ON COLUMN farmops.ai_runs.credits_reserved IS
'Credits taken from the balance at reserve time (the caller''s upper bound).';
COMMENT ON COLUMN farmops.ai_runs.credits_actual IS
'What the run cost, set at settle (given, or computed from tokens at the rate in force at reserved_at).';
COMMENT ON COLUMN farmops.ai_runs.credits_shortfall IS
'Part of credits_actual the farm could not pay at settle time (the balance never goes negative).';
COMMENT ON COLUMN farmops.ai_runs.request_id IS
'Caller''s idempotency key, unique per farm: the same key returns the same run, never charges twice.';
COMMENT ON COLUMN farmops.ai_runs.expires_at IS
'A run still live after this is expired by farmops.expire_reservations() and its reservation refunded.';

CREATE TABLE farmops.credit_ledger (
    farm_id uuid NOT NULL REFERENCES farmops.farms (id),
    id bigint GENERATED ALWAYS AS IDENTITY,
    ai_run_id uuid,
    kind text NOT NULL
    CHECK (kind IN ('grant', 'reserve', 'settle_refund', 'settle_charge', 'expire_refund', 'adjust')),
    delta integer NOT NULL CHECK (delta <> 0),
    balance_after integer NOT NULL CHECK (balance_after >= 0),
    reason text CHECK (char_length(reason) <= 1000),
    actor text NOT NULL CHECK (char_length(actor) BETWEEN 1 AND 256),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (farm_id, id),
    FOREIGN KEY (farm_id, ai_run_id) REFERENCES farmops.ai_runs (farm_id, id),
    -- Each kind moves credits in one direction only.
    CHECK (
        (kind IN ('grant', 'settle_refund', 'expire_refund') AND delta > 0)
        OR (kind IN ('reserve', 'settle_charge') AND delta < 0)
        OR kind = 'adjust'
    ),
    CHECK ((kind IN ('grant', 'adjust')) = (ai_run_id IS NULL))
);
-- At most one reserve leg and at most one closing leg (settle or expire) per run:
-- a second refund of the same run is a unique violation, whatever the code path.
CREATE UNIQUE INDEX credit_ledger_one_leg_per_run_idx
ON farmops.credit_ledger (farm_id, ai_run_id, (kind = 'reserve'))
WHERE ai_run_id IS NOT NULL;
COMMENT ON TABLE farmops.credit_ledger IS
'Append-only financial truth: every credit movement with the balance after it; never updated or deleted.';
COMMENT ON COLUMN farmops.credit_ledger.delta IS
'Signed credit movement: grant and refunds positive, reserve and settle_charge negative.';
COMMENT ON COLUMN farmops.credit_ledger.balance_after IS
'farms.credit_balance right after this row; the rows of one farm chain in id order.';
COMMENT ON COLUMN farmops.credit_ledger.actor IS
'Who moved the credits: the tenant user, or the maintenance job that expired a run.';
