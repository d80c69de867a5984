-- Rate-limit refusals, counted although the refused transaction rolls back.
-- An OF402 refusal is an error: it undoes everything its transaction wrote, a counter
-- row too. A sequence is the one thing PostgreSQL does not roll back, so each farm that
-- has a limit gets one sequence per scope (the farm's own limits; its members'), made
-- by set_rate_limits and advanced where the refusal is raised (functions/60_control/
-- rate_limits.sql). This private table maps a farm to them; the sequences are named by a
-- number, never by the farm's id, because the catalog (pg_class) is readable by every role.

CREATE SEQUENCE farmops._rate_limit_counter_numbers AS bigint;
COMMENT ON SEQUENCE farmops._rate_limit_counter_numbers IS
'Numbers the per-farm refusal sequences (farmops._rate_limit_refusals_N): names that do not carry a farm id.';

CREATE TABLE farmops._rate_limit_counters (
    farm_id uuid NOT NULL REFERENCES farmops.farms (id),
    scope text NOT NULL,
    counter text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (farm_id, scope),
    CONSTRAINT rate_limit_counters_scope_is_known CHECK (scope IN ('farm', 'member')),
    CONSTRAINT rate_limit_counters_counter_is_unique UNIQUE (farm_id, counter)
);
COMMENT ON TABLE farmops._rate_limit_counters IS
'Private: the sequence counting each farm''s rate-limit refusals per scope (farm: the farm''s limits; member: '
'its members''), read by farmops.rate_limit_refusals(). Sequences, because a refusal rolls its transaction back.';
COMMENT ON COLUMN farmops._rate_limit_counters.counter IS
'The sequence''s qualified name (farmops._rate_limit_refusals_N); its last value is the count.';
