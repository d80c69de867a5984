-- What a run costs: credits per 1k input and per 1k output tokens per model,
-- effective-dated so a price change never rewrites what past runs cost. Global
-- (not per farm): read by every tenant, written only by the package owner.

CREATE TABLE farmops.model_rates (
    -- '*' is the default rate for models without a row of their own.
    model text NOT NULL CHECK (char_length(model) BETWEEN 1 AND 200),
    effective_from timestamptz NOT NULL DEFAULT now(),
    input_credits_per_1k integer NOT NULL CHECK (input_credits_per_1k >= 0),
    output_credits_per_1k integer NOT NULL CHECK (output_credits_per_1k >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL DEFAULT current_user,
    PRIMARY KEY (model, effective_from)
);
COMMENT ON TABLE farmops.model_rates IS
'Global, effective-dated price list: credits per 1k input/output tokens per model; model ''*'' is the default.';
COMMENT ON COLUMN farmops.model_rates.effective_from IS
'The rate applies to runs reserved at or after this instant, until the next row of the same model.';

INSERT INTO farmops.model_rates (model, effective_from, input_credits_per_1k, output_credits_per_1k)
VALUES ('*', '-infinity', 1, 4);
