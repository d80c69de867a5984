-- Tenants and their members. farms.id is the tenant boundary: every tenant
-- table carries farm_id and keys that include it.

CREATE TABLE farmops.farms (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL CHECK (char_length(btrim(name)) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Integer credit units; never negative. Written only by the credit functions.
    credit_balance integer NOT NULL DEFAULT 0 CHECK (credit_balance >= 0),
    ai_autonomy text NOT NULL DEFAULT 'draft'
    CHECK (ai_autonomy IN ('suggest', 'draft', 'auto')),
    ai_auto_categories jsonb NOT NULL DEFAULT '[]'::jsonb
    CHECK (jsonb_typeof(ai_auto_categories) = 'array'),
    ai_record_autonomy jsonb NOT NULL DEFAULT '{}'::jsonb
    CHECK (jsonb_typeof(ai_record_autonomy) = 'object')
);
COMMENT ON TABLE farmops.farms IS 'Tenants. id is the tenant boundary every other table carries as farm_id.';
COMMENT ON COLUMN farmops.farms.credit_balance IS
'Credits left, integer units, never negative; equals the sum of the farm''s credit_ledger deltas.';
COMMENT ON COLUMN farmops.farms.ai_autonomy IS
'Farm-wide AI tier: suggest (no writes), draft (human confirms), auto (allow-listed routine types only).';
COMMENT ON COLUMN farmops.farms.ai_auto_categories IS
'JSON array of record types the AI may write directly when ai_autonomy = auto.';
COMMENT ON COLUMN farmops.farms.ai_record_autonomy IS
'JSON object record type -> tier overriding ai_autonomy, within the financial/destructive floor.';

CREATE TABLE farmops.farm_members (
    farm_id uuid NOT NULL REFERENCES farmops.farms (id),
    -- The embedding product's own user identifier; farmops keeps no passwords.
    user_id text NOT NULL CHECK (char_length(user_id) BETWEEN 1 AND 256 AND user_id !~ '[[:cntrl:]]'),
    role text NOT NULL CHECK (role IN ('owner', 'manager', 'worker', 'viewer', 'agent')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (farm_id, user_id)
);
CREATE INDEX farm_members_user_id_idx ON farmops.farm_members (user_id);
COMMENT ON TABLE farmops.farm_members IS
'Who belongs to which farm, and as what: owner, manager, worker, viewer (read-only) or agent (the AI).';

-- The key that signs the transaction-local tenant context, so that a session
-- cannot forge a context with set_config() and skip the membership check.
CREATE TABLE farmops.context_signing_key (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    signing_key bytea NOT NULL CHECK (octet_length(signing_key) = 32)
);
COMMENT ON TABLE farmops.context_signing_key IS
'Private: the per-database secret that signs tenant contexts set by farmops.begin_tenant().';
INSERT INTO farmops.context_signing_key (signing_key)
VALUES (sha256(convert_to(gen_random_uuid()::text || gen_random_uuid()::text || clock_timestamp()::text, 'UTF8')));
