-- Every write the AI proposes lands here first: pending drafts wait for a
-- human; auto-applied writes leave a terminal row for the audit trail. The
-- state machine (pending -> confirmed | discarded | expired) is enforced by
-- CHECKs here and by the trigger in functions/drafts_state_machine.sql.

CREATE TABLE farmops.assistant_drafts (
    farm_id uuid NOT NULL REFERENCES farmops.farms (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    ai_run_id uuid NOT NULL,
    record_type text NOT NULL REFERENCES farmops.record_types (name),
    -- The payload exactly as proposed (validated); a confirmer's changes are kept apart in edits.
    payload jsonb NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
    edits jsonb CHECK (jsonb_typeof(edits) = 'object'),
    status text NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'confirmed', 'discarded', 'expired', 'auto_applied')),
    created_by text NOT NULL CHECK (char_length(created_by) BETWEEN 1 AND 256),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL DEFAULT now() + interval '24 hours',
    decided_by text CHECK (char_length(decided_by) BETWEEN 1 AND 256),
    decided_at timestamptz,
    decision_reason text CHECK (char_length(decision_reason) <= 1000),
    record_id uuid,
    PRIMARY KEY (farm_id, id),
    FOREIGN KEY (farm_id, ai_run_id) REFERENCES farmops.ai_runs (farm_id, id),
    CHECK (expires_at > created_at),
    -- A record exists exactly for confirmed and auto-applied drafts.
    CHECK ((status IN ('confirmed', 'auto_applied')) = (record_id IS NOT NULL)),
    -- Every terminal state says when; humans' decisions also say who.
    CHECK ((status = 'pending') = (decided_at IS NULL)),
    CHECK (status NOT IN ('confirmed', 'discarded', 'auto_applied') OR decided_by IS NOT NULL),
    CHECK (status = 'confirmed' OR edits IS NULL)
);
CREATE INDEX assistant_drafts_pending_expiry_idx ON farmops.assistant_drafts (expires_at)
WHERE status = 'pending';
CREATE INDEX assistant_drafts_run_idx ON farmops.assistant_drafts (farm_id, ai_run_id);
COMMENT ON TABLE farmops.assistant_drafts IS
'Every AI write proposal: pending -> confirmed | discarded | expired by a human or by TTL; auto_applied is '
'created terminal. Terminal states are final (enforced by trigger, even for the owner role).';
COMMENT ON COLUMN farmops.assistant_drafts.payload IS 'The payload as the AI proposed it (validated against its type).';
COMMENT ON COLUMN farmops.assistant_drafts.edits IS
'The confirmer''s changes, merged over payload before the record was written (null value = remove key).';
COMMENT ON COLUMN farmops.assistant_drafts.expires_at IS
'Approval TTL (default 24 h): after it the draft can no longer be confirmed and expire_drafts() marks it.';
COMMENT ON COLUMN farmops.assistant_drafts.record_id IS
'The id of the row written in the type''s target table (which points back via draft_id).';
