-- The farm records the AI writes (seed 001's record types). Each table is a
-- tenant table with a composite key, and draft_id points back at the draft
-- that produced the row: UNIQUE (farm_id, draft_id) means one draft can never
-- write two records, whatever races happen above it. Money is integer kobo.

CREATE TABLE farmops.mortality_records (
    farm_id uuid NOT NULL REFERENCES farmops.farms (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    draft_id uuid,
    created_by text NOT NULL CHECK (char_length(created_by) BETWEEN 1 AND 256),
    created_at timestamptz NOT NULL DEFAULT now(),
    event_date date NOT NULL DEFAULT current_date,
    count integer NOT NULL CHECK (count BETWEEN 1 AND 1000000),
    cause text CHECK (char_length(cause) <= 500),
    flock text CHECK (char_length(flock) <= 100),
    PRIMARY KEY (farm_id, id),
    UNIQUE (farm_id, draft_id),
    FOREIGN KEY (farm_id, draft_id) REFERENCES farmops.assistant_drafts (farm_id, id)
);
COMMENT ON TABLE farmops.mortality_records IS 'Animals that died (record type mortality, destructive: reduces stock).';

CREATE TABLE farmops.feed_use_records (
    farm_id uuid NOT NULL REFERENCES farmops.farms (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    draft_id uuid,
    created_by text NOT NULL CHECK (char_length(created_by) BETWEEN 1 AND 256),
    created_at timestamptz NOT NULL DEFAULT now(),
    event_date date NOT NULL DEFAULT current_date,
    feed_type text NOT NULL CHECK (char_length(feed_type) BETWEEN 1 AND 100),
    quantity_kg numeric(12, 3) NOT NULL CHECK (quantity_kg > 0 AND quantity_kg <= 1000000),
    flock text CHECK (char_length(flock) <= 100),
    PRIMARY KEY (farm_id, id),
    UNIQUE (farm_id, draft_id),
    FOREIGN KEY (farm_id, draft_id) REFERENCES farmops.assistant_drafts (farm_id, id)
);
COMMENT ON TABLE farmops.feed_use_records IS 'Feed given (record type feed_use, routine).';

CREATE TABLE farmops.sale_records (
    farm_id uuid NOT NULL REFERENCES farmops.farms (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    draft_id uuid,
    created_by text NOT NULL CHECK (char_length(created_by) BETWEEN 1 AND 256),
    created_at timestamptz NOT NULL DEFAULT now(),
    event_date date NOT NULL DEFAULT current_date,
    item text NOT NULL CHECK (char_length(item) BETWEEN 1 AND 200),
    quantity integer NOT NULL CHECK (quantity BETWEEN 1 AND 10000000),
    amount_kobo bigint NOT NULL CHECK (amount_kobo BETWEEN 1 AND 1000000000000),
    buyer text CHECK (char_length(buyer) <= 200),
    PRIMARY KEY (farm_id, id),
    UNIQUE (farm_id, draft_id),
    FOREIGN KEY (farm_id, draft_id) REFERENCES farmops.assistant_drafts (farm_id, id)
);
COMMENT ON TABLE farmops.sale_records IS
'Sales (record type sale, financial). amount_kobo: total, integer minor units.';

CREATE TABLE farmops.expense_records (
    farm_id uuid NOT NULL REFERENCES farmops.farms (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    draft_id uuid,
    created_by text NOT NULL CHECK (char_length(created_by) BETWEEN 1 AND 256),
    created_at timestamptz NOT NULL DEFAULT now(),
    event_date date NOT NULL DEFAULT current_date,
    category text NOT NULL CHECK (
        category IN ('feed', 'medication', 'veterinary', 'labour', 'utilities', 'equipment', 'transport', 'other')
    ),
    amount_kobo bigint NOT NULL CHECK (amount_kobo BETWEEN 1 AND 1000000000000),
    description text CHECK (char_length(description) <= 500),
    vendor text CHECK (char_length(vendor) <= 200),
    PRIMARY KEY (farm_id, id),
    UNIQUE (farm_id, draft_id),
    FOREIGN KEY (farm_id, draft_id) REFERENCES farmops.assistant_drafts (farm_id, id)
);
COMMENT ON TABLE farmops.expense_records IS
'Expenses (record type expense, financial). amount_kobo: integer minor units.';

CREATE TABLE farmops.water_records (
    farm_id uuid NOT NULL REFERENCES farmops.farms (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    draft_id uuid,
    created_by text NOT NULL CHECK (char_length(created_by) BETWEEN 1 AND 256),
    created_at timestamptz NOT NULL DEFAULT now(),
    event_date date NOT NULL DEFAULT current_date,
    litres numeric(12, 3) NOT NULL CHECK (litres > 0 AND litres <= 10000000),
    flock text CHECK (char_length(flock) <= 100),
    PRIMARY KEY (farm_id, id),
    UNIQUE (farm_id, draft_id),
    FOREIGN KEY (farm_id, draft_id) REFERENCES farmops.assistant_drafts (farm_id, id)
);
COMMENT ON TABLE farmops.water_records IS 'Water consumption (record type water, routine).';

CREATE TABLE farmops.weight_records (
    farm_id uuid NOT NULL REFERENCES farmops.farms (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    draft_id uuid,
    created_by text NOT NULL CHECK (char_length(created_by) BETWEEN 1 AND 256),
    created_at timestamptz NOT NULL DEFAULT now(),
    event_date date NOT NULL DEFAULT current_date,
    flock text CHECK (char_length(flock) <= 100),
    average_weight_grams integer NOT NULL CHECK (average_weight_grams BETWEEN 1 AND 2000000),
    sample_size integer CHECK (sample_size BETWEEN 1 AND 100000),
    PRIMARY KEY (farm_id, id),
    UNIQUE (farm_id, draft_id),
    FOREIGN KEY (farm_id, draft_id) REFERENCES farmops.assistant_drafts (farm_id, id)
);
COMMENT ON TABLE farmops.weight_records IS 'Weighing results (record type weight, routine).';

CREATE TABLE farmops.symptom_records (
    farm_id uuid NOT NULL REFERENCES farmops.farms (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    draft_id uuid,
    created_by text NOT NULL CHECK (char_length(created_by) BETWEEN 1 AND 256),
    created_at timestamptz NOT NULL DEFAULT now(),
    event_date date NOT NULL DEFAULT current_date,
    flock text CHECK (char_length(flock) <= 100),
    symptoms text NOT NULL CHECK (char_length(symptoms) BETWEEN 1 AND 1000),
    affected_count integer CHECK (affected_count BETWEEN 1 AND 1000000),
    severity text CHECK (severity IN ('mild', 'moderate', 'severe')),
    PRIMARY KEY (farm_id, id),
    UNIQUE (farm_id, draft_id),
    FOREIGN KEY (farm_id, draft_id) REFERENCES farmops.assistant_drafts (farm_id, id)
);
COMMENT ON TABLE farmops.symptom_records IS 'Observed signs of illness (record type symptom, routine).';

CREATE TABLE farmops.note_records (
    farm_id uuid NOT NULL REFERENCES farmops.farms (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    draft_id uuid,
    created_by text NOT NULL CHECK (char_length(created_by) BETWEEN 1 AND 256),
    created_at timestamptz NOT NULL DEFAULT now(),
    title text CHECK (char_length(title) <= 200),
    body text NOT NULL CHECK (char_length(body) BETWEEN 1 AND 4000),
    PRIMARY KEY (farm_id, id),
    UNIQUE (farm_id, draft_id),
    FOREIGN KEY (farm_id, draft_id) REFERENCES farmops.assistant_drafts (farm_id, id)
);
COMMENT ON TABLE farmops.note_records IS 'Free-text farm notes (record type note, routine).';

CREATE TABLE farmops.task_records (
    farm_id uuid NOT NULL REFERENCES farmops.farms (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    draft_id uuid,
    created_by text NOT NULL CHECK (char_length(created_by) BETWEEN 1 AND 256),
    created_at timestamptz NOT NULL DEFAULT now(),
    title text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    details text CHECK (char_length(details) <= 2000),
    due_date date,
    priority text NOT NULL DEFAULT 'normal' CHECK (priority IN ('low', 'normal', 'high')),
    PRIMARY KEY (farm_id, id),
    UNIQUE (farm_id, draft_id),
    FOREIGN KEY (farm_id, draft_id) REFERENCES farmops.assistant_drafts (farm_id, id)
);
COMMENT ON TABLE farmops.task_records IS 'Operational to-dos (record type task, routine).';

-- Seed 001's record types. Property names are the target columns.
INSERT INTO farmops.record_types (
    name, class, description, target_schema, target_table, date_past_days, date_future_days, input_schema
) VALUES
(
    'mortality', 'destructive', 'Record animals that died: how many, when, which flock and why.',
    'farmops', 'mortality_records', 730, 1,
    '{"type": "object", "additionalProperties": false, "required": ["count"], "properties": {
      "event_date": {"type": "string", "format": "date", "description": "Day of death, YYYY-MM-DD (default today)."},
      "count": {"type": "integer", "minimum": 1, "maximum": 1000000, "description": "Number of animals that died."},
      "cause": {"type": "string", "maxLength": 500, "description": "Known or suspected cause."},
      "flock": {"type": "string", "maxLength": 100, "description": "Flock, pen, pond or herd name."}}}'
),
(
    'feed_use', 'routine', 'Record feed given to animals.',
    'farmops', 'feed_use_records', 730, 1,
    '{"type": "object", "additionalProperties": false, "required": ["feed_type", "quantity_kg"], "properties": {
      "event_date": {"type": "string", "format": "date", "description": "Day of feeding, YYYY-MM-DD (default today)."},
      "feed_type": {"type": "string", "minLength": 1, "maxLength": 100, "description": "Feed name, e.g. starter mash."},
      "quantity_kg": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000000, "description": "Kilograms of feed."},
      "flock": {"type": "string", "maxLength": 100, "description": "Flock, pen, pond or herd name."}}}'
),
(
    'sale', 'financial', 'Record a sale of produce or animals; amount in kobo (integer minor units).',
    'farmops', 'sale_records', 730, 1,
    '{"type": "object", "additionalProperties": false, "required": ["item", "quantity", "amount_kobo"], "properties": {
      "event_date": {"type": "string", "format": "date", "description": "Day of sale, YYYY-MM-DD (default today)."},
      "item": {"type": "string", "minLength": 1, "maxLength": 200, "description": "What was sold, e.g. crates of eggs."},
      "quantity": {"type": "integer", "minimum": 1, "maximum": 10000000, "description": "How many units were sold."},
      "amount_kobo": {"type": "integer", "minimum": 1, "maximum": 1000000000000,
                      "description": "Total price in kobo (100 kobo = 1 naira), integer."},
      "buyer": {"type": "string", "maxLength": 200, "description": "Who bought it."}}}'
),
(
    'expense', 'financial', 'Record money spent; amount in kobo (integer minor units).',
    'farmops', 'expense_records', 730, 1,
    '{"type": "object", "additionalProperties": false, "required": ["category", "amount_kobo"], "properties": {
      "event_date": {"type": "string", "format": "date", "description": "Day of the expense, YYYY-MM-DD (default today)."},
      "category": {"type": "string", "maxLength": 20, "description": "Kind of expense.",
                   "enum": ["feed", "medication", "veterinary", "labour", "utilities", "equipment", "transport", "other"]},
      "amount_kobo": {"type": "integer", "minimum": 1, "maximum": 1000000000000,
                      "description": "Amount in kobo (100 kobo = 1 naira), integer."},
      "description": {"type": "string", "maxLength": 500, "description": "What the money was for."},
      "vendor": {"type": "string", "maxLength": 200, "description": "Who was paid."}}}'
),
(
    'water', 'routine', 'Record water consumption.',
    'farmops', 'water_records', 730, 1,
    '{"type": "object", "additionalProperties": false, "required": ["litres"], "properties": {
      "event_date": {"type": "string", "format": "date", "description": "Day, YYYY-MM-DD (default today)."},
      "litres": {"type": "number", "exclusiveMinimum": 0, "maximum": 10000000, "description": "Litres consumed."},
      "flock": {"type": "string", "maxLength": 100, "description": "Flock, pen, pond or herd name."}}}'
),
(
    'weight', 'routine', 'Record a weighing: average weight of a sample of animals.',
    'farmops', 'weight_records', 730, 1,
    '{"type": "object", "additionalProperties": false, "required": ["average_weight_grams"], "properties": {
      "event_date": {"type": "string", "format": "date", "description": "Day of weighing, YYYY-MM-DD (default today)."},
      "flock": {"type": "string", "maxLength": 100, "description": "Flock, pen, pond or herd name."},
      "average_weight_grams": {"type": "integer", "minimum": 1, "maximum": 2000000,
                               "description": "Average weight per animal in grams."},
      "sample_size": {"type": "integer", "minimum": 1, "maximum": 100000, "description": "Animals weighed."}}}'
),
(
    'symptom', 'routine', 'Record observed signs of illness (not a diagnosis or treatment).',
    'farmops', 'symptom_records', 730, 1,
    '{"type": "object", "additionalProperties": false, "required": ["symptoms"], "properties": {
      "event_date": {"type": "string", "format": "date", "description": "Day observed, YYYY-MM-DD (default today)."},
      "flock": {"type": "string", "maxLength": 100, "description": "Flock, pen, pond or herd name."},
      "symptoms": {"type": "string", "minLength": 1, "maxLength": 1000, "description": "What was observed."},
      "affected_count": {"type": "integer", "minimum": 1, "maximum": 1000000, "description": "Animals affected."},
      "severity": {"type": "string", "maxLength": 10, "enum": ["mild", "moderate", "severe"],
                   "description": "How severe it looks."}}}'
),
(
    'note', 'routine', 'Save a free-text note about the farm.',
    'farmops', 'note_records', 730, 1,
    '{"type": "object", "additionalProperties": false, "required": ["body"], "properties": {
      "title": {"type": "string", "maxLength": 200, "description": "Short title."},
      "body": {"type": "string", "minLength": 1, "maxLength": 4000, "description": "The note."}}}'
),
(
    'task', 'routine', 'Create an operational task (a to-do) for the farm team.',
    'farmops', 'task_records', 30, 730,
    '{"type": "object", "additionalProperties": false, "required": ["title"], "properties": {
      "title": {"type": "string", "minLength": 1, "maxLength": 200, "description": "What needs doing."},
      "details": {"type": "string", "maxLength": 2000, "description": "More detail."},
      "due_date": {"type": "string", "format": "date", "description": "When it is due, YYYY-MM-DD."},
      "priority": {"type": "string", "maxLength": 10, "enum": ["low", "normal", "high"],
                   "description": "Priority (default normal)."}}}'
);
