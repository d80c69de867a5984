-- squawk-ignore-file prefer-bigint-over-int, constraint-missing-not-valid
-- (why: every integer here is bounded far below 2^31 by its CHECK or its setter (rank <= 10000,
-- limits <= 10^9); the new constraints name only columns this file adds, all NULL, checked
-- once inside the install transaction that holds the table anyway for ADD COLUMN.)
-- Spend control, part one (issue 14 §1 and §2): policy rules as rows, runs held for
-- approval, and rate limits whose state lives on the rows a reservation already
-- touches (functions: sql/functions/60_control/).
--
-- Two rule tables, not one with a nullable farm_id (as guard_rules, 0075): the
-- package-wide defaults are a reference table without farm_id, the farms' rules a
-- tenant table (farm_id NOT NULL, keys lead with farm_id, the standard RLS policy).

CREATE TABLE farmops.policies (
    farm_id uuid NOT NULL REFERENCES farmops.farms (id),
    name text NOT NULL,
    -- Order: lower first; ties by name. First matching decision wins.
    rank integer NOT NULL DEFAULT 100,
    action text NOT NULL,
    -- The subject: NULL matches anything.
    feature text,
    model text,
    record_type text,
    member_role text,
    capability text,
    -- [{"attribute": "credits", "op": "gte", "value": 500}, ...]: all must hold.
    conditions jsonb NOT NULL DEFAULT '[]'::jsonb,
    decision text NOT NULL,
    masked_kinds text[],
    description text,
    updated_by text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT one_policy_per_name PRIMARY KEY (farm_id, name),
    CONSTRAINT policy_name_is_a_short_identifier CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
    CONSTRAINT policy_rank_is_between_1_and_10000 CHECK (rank BETWEEN 1 AND 10000),
    CONSTRAINT policy_action_is_reserve_or_propose_write CHECK (action IN ('reserve', 'propose_write')),
    CONSTRAINT policy_decision_is_known CHECK (decision IN ('allow', 'deny', 'require_approval', 'mask')),
    CONSTRAINT mask_policies_and_only_they_name_kinds CHECK (
        (decision = 'mask') = (masked_kinds IS NOT NULL AND cardinality(masked_kinds) >= 1)
    ),
    CONSTRAINT policy_conditions_are_an_array CHECK (jsonb_typeof(conditions) = 'array'),
    CONSTRAINT policy_description_is_short CHECK (char_length(description) <= 1000)
);
COMMENT ON TABLE farmops.policies IS
'A farm''s spend-control rules (issue 14): subject, conditions and decision, evaluated in order inside '
'_reserve and propose_write; written by farmops.set_policy / drop_policy only.';
COMMENT ON COLUMN farmops.policies.rank IS
'Evaluation order (lower first, then name); the first matching decision wins.';
COMMENT ON COLUMN farmops.policies.conditions IS
'JSON array of {attribute, op, value}; op eq | in | gte | lte | between; every condition must hold.';
COMMENT ON COLUMN farmops.policies.decision IS
'allow | deny | require_approval | mask (mask adds PII kinds to keep masked and is not a decision).';

CREATE TABLE farmops.default_policies (
    name text NOT NULL,
    rank integer NOT NULL DEFAULT 100,
    action text NOT NULL,
    feature text,
    model text,
    record_type text,
    member_role text,
    capability text,
    conditions jsonb NOT NULL DEFAULT '[]'::jsonb,
    decision text NOT NULL,
    masked_kinds text[],
    description text,
    updated_by text NOT NULL DEFAULT current_user,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT one_default_policy_per_name PRIMARY KEY (name),
    CONSTRAINT default_policy_name_is_a_short_identifier CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
    CONSTRAINT default_policy_rank_is_between_1_and_10000 CHECK (rank BETWEEN 1 AND 10000),
    CONSTRAINT default_policy_action_is_reserve_or_propose_write CHECK (action IN ('reserve', 'propose_write')),
    CONSTRAINT default_policy_decision_is_known CHECK (decision IN ('allow', 'deny', 'require_approval', 'mask')),
    CONSTRAINT default_mask_policies_and_only_they_name_kinds CHECK (
        (decision = 'mask') = (masked_kinds IS NOT NULL AND cardinality(masked_kinds) >= 1)
    ),
    CONSTRAINT default_policy_conditions_are_an_array CHECK (jsonb_typeof(conditions) = 'array'),
    CONSTRAINT default_policy_description_is_short CHECK (char_length(description) <= 1000)
);
COMMENT ON TABLE farmops.default_policies IS
'Package-wide rules (no farm_id: a reference table), evaluated after every farm''s own rules; written by the '
'package owner with farmops.set_default_policy / drop_default_policy.';

-- Runs a require_approval rule holds: live (status reserved, credits held, expiry
-- refunds them) but not startable until an owner or manager approves.
ALTER TABLE farmops.ai_runs
ADD COLUMN approval text,
ADD COLUMN approval_rule text,
ADD COLUMN approval_decided_by text,
ADD COLUMN approval_decided_at timestamptz,
ADD CONSTRAINT approval_is_pending_approved_or_rejected CHECK (approval IN ('pending', 'approved', 'rejected')),
ADD CONSTRAINT decided_approvals_say_who_and_when CHECK (
    (approval IN ('approved', 'rejected')) = (approval_decided_by IS NOT NULL AND approval_decided_at IS NOT NULL)
);
COMMENT ON COLUMN farmops.ai_runs.approval IS
'NULL (no rule asked), pending (held by a require_approval policy: cannot start), approved or rejected.';
COMMENT ON COLUMN farmops.ai_runs.approval_rule IS 'The policy that held the run for approval.';

-- Rate limits (GCRA: one theoretical arrival time per key, no cleanup job). The
-- farm's own limit and state sit on the farm row the debit updates anyway; each
-- member's on the member's row. NULL limit = no limit.
ALTER TABLE farmops.farms
ADD COLUMN time_zone text NOT NULL DEFAULT 'UTC',
ADD COLUMN requests_per_minute integer,
ADD COLUMN tokens_per_minute integer,
ADD COLUMN member_requests_per_minute integer,
ADD COLUMN member_tokens_per_minute integer,
ADD COLUMN requests_tat timestamptz,
ADD COLUMN tokens_tat timestamptz,
ADD CONSTRAINT farm_rate_limits_are_positive CHECK (
    requests_per_minute > 0 AND tokens_per_minute > 0
    AND member_requests_per_minute > 0 AND member_tokens_per_minute > 0
);
COMMENT ON COLUMN farmops.farms.time_zone IS 'The farm''s time zone: policies'' hour and weekday are read in it.';
COMMENT ON COLUMN farmops.farms.requests_per_minute IS 'Reservations per minute for the whole farm (NULL: no limit).';
COMMENT ON COLUMN farmops.farms.tokens_per_minute IS 'Model tokens per minute for the whole farm (NULL: no limit).';
COMMENT ON COLUMN farmops.farms.member_requests_per_minute IS
'Reservations per minute for each member without their own limit (NULL: no limit).';
COMMENT ON COLUMN farmops.farms.member_tokens_per_minute IS
'Model tokens per minute for each member without their own limit (NULL: no limit).';
COMMENT ON COLUMN farmops.farms.requests_tat IS 'GCRA state of the farm''s request limit (theoretical arrival time).';
COMMENT ON COLUMN farmops.farms.tokens_tat IS 'GCRA state of the farm''s token limit (theoretical arrival time).';

ALTER TABLE farmops.farm_members
ADD COLUMN requests_per_minute integer,
ADD COLUMN tokens_per_minute integer,
ADD COLUMN requests_tat timestamptz,
ADD COLUMN tokens_tat timestamptz,
ADD CONSTRAINT member_rate_limits_are_positive CHECK (requests_per_minute > 0 AND tokens_per_minute > 0);
COMMENT ON COLUMN farmops.farm_members.requests_per_minute IS
'This member''s reservations per minute (NULL: the farm''s member_requests_per_minute).';
COMMENT ON COLUMN farmops.farm_members.tokens_per_minute IS
'This member''s model tokens per minute (NULL: the farm''s member_tokens_per_minute).';
COMMENT ON COLUMN farmops.farm_members.requests_tat IS 'GCRA state of the member''s request limit.';
COMMENT ON COLUMN farmops.farm_members.tokens_tat IS 'GCRA state of the member''s token limit.';

-- Who may: owners write the rules and limits; owners and managers decide held runs.
INSERT INTO farmops.role_capabilities (role, capability) VALUES
('owner', 'manage_policies'),
('owner', 'set_rate_limits'),
('owner', 'approve_runs'),
('manager', 'approve_runs');

-- The reservation core gains the token count of the request (reserve_run's bounds).
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS farmops._reserve(uuid, text, text, text, integer, text, interval, text);
