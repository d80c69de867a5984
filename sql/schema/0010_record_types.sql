-- The registry of record types the AI may propose. Global (not per farm): the
-- package owner and embedding products register types; farms choose autonomy.
-- input_schema is plain JSON Schema, passed verbatim to Bedrock Converse as a
-- tool's inputSchema; the SQL validator enforces the same document.

CREATE TABLE farmops.record_types (
    name text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,47}$'),
    class text NOT NULL CHECK (class IN ('financial', 'destructive', 'routine')),
    description text NOT NULL CHECK (char_length(description) BETWEEN 1 AND 1000),
    target_schema text NOT NULL CHECK (char_length(target_schema) BETWEEN 1 AND 63),
    target_table text NOT NULL CHECK (char_length(target_table) BETWEEN 1 AND 63),
    input_schema jsonb NOT NULL CHECK (
        jsonb_typeof(input_schema) = 'object'
        AND input_schema ->> 'type' = 'object'
        AND input_schema -> 'additionalProperties' = 'false'::jsonb
        AND jsonb_typeof(input_schema -> 'properties') = 'object'
    ),
    -- Sanity window for every "format": "date" property, relative to current_date.
    date_past_days integer NOT NULL DEFAULT 730 CHECK (date_past_days BETWEEN 0 AND 36500),
    date_future_days integer NOT NULL DEFAULT 1 CHECK (date_future_days BETWEEN 0 AND 36500),
    registered_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (target_schema, target_table)
);
COMMENT ON TABLE farmops.record_types IS
'Registry of record types the AI may propose: class, JSON-Schema payload contract and the table it writes.';
COMMENT ON COLUMN farmops.record_types.class IS
'financial | destructive (always drafted for a human) | routine (may be auto-applied if the farm allows).';
COMMENT ON COLUMN farmops.record_types.input_schema IS
'JSON Schema object (type, properties, required, additionalProperties=false) used verbatim as the Bedrock tool '
'inputSchema and enforced by farmops.validate_payload().';
COMMENT ON COLUMN farmops.record_types.date_past_days IS
'A "format": "date" value may be at most this many days before current_date.';
COMMENT ON COLUMN farmops.record_types.date_future_days IS
'A "format": "date" value may be at most this many days after current_date.';
