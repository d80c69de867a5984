-- The seeded default rate started at '-infinity', which psycopg cannot load into a
-- Python datetime (farmops.model_rate_at() raised DataError in the client). A finite
-- instant before any run does the same job; set_model_rate() refuses infinities.
UPDATE farmops.model_rates
SET effective_from = '1970-01-01 00:00:00+00'
WHERE effective_from = '-infinity';

-- New rows are checked; the UPDATE above left no infinite one to validate (NOT VALID
-- keeps squawk's rule: no validation scan in the install transaction).
ALTER TABLE farmops.model_rates
ADD CONSTRAINT model_rate_starts_at_a_finite_instant CHECK (isfinite(effective_from)) NOT VALID;
