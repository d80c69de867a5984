-- Append-only audit of every change to a farm's AI autonomy settings.

CREATE TABLE farmops.autonomy_changes (
    farm_id uuid NOT NULL REFERENCES farmops.farms (id),
    id bigint GENERATED ALWAYS AS IDENTITY,
    changed_by text NOT NULL CHECK (char_length(changed_by) BETWEEN 1 AND 256),
    changed_at timestamptz NOT NULL DEFAULT now(),
    old_settings jsonb NOT NULL CHECK (jsonb_typeof(old_settings) = 'object'),
    new_settings jsonb NOT NULL CHECK (jsonb_typeof(new_settings) = 'object'),
    PRIMARY KEY (farm_id, id)
);
COMMENT ON TABLE farmops.autonomy_changes IS
'Append-only: who changed a farm''s ai_autonomy / ai_auto_categories / ai_record_autonomy, when, from what, to what.';
