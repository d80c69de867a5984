-- The price of a run is a database rule: rates come from farmops.model_rates,
-- effective-dated, with the '*' row as the default.

CREATE OR REPLACE FUNCTION farmops.model_rate_at(p_model text, p_at timestamptz)
RETURNS farmops.model_rates
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_rate farmops.model_rates;
BEGIN
    -- The model's own rate wins over the default; within one model, the latest in force.
    SELECT r.* INTO v_rate
    FROM farmops.model_rates AS r
    WHERE r.model IN (p_model, '*') AND r.effective_from <= p_at
    ORDER BY (r.model = p_model) DESC, r.effective_from DESC
    LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no rate for model % and no default rate in force at %', p_model, p_at
            USING ERRCODE = 'OF108';
    END IF;
    RETURN v_rate;
END
$fn$;
COMMENT ON FUNCTION farmops.model_rate_at(text, timestamptz) IS
'The rate row in force for a model at an instant (its own, else ''*''); OF108 if none.';

CREATE OR REPLACE FUNCTION farmops.credits_for_tokens(
    p_model text, p_at timestamptz, p_input_tokens integer, p_output_tokens integer
)
RETURNS integer
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_rate farmops.model_rates := farmops.model_rate_at(p_model, p_at);
    v_credits numeric;
BEGIN
    -- A negative count would price a run below nothing (NULL counts as 0).
    IF p_input_tokens < 0 OR p_output_tokens < 0 THEN
        RAISE EXCEPTION 'token counts must not be negative (% input, % output)', p_input_tokens, p_output_tokens
            USING ERRCODE = 'OF006';
    END IF;
    -- numeric: token counts times rates overflow integer long before they make sense.
    v_credits := ceil(
        (coalesce(p_input_tokens, 0)::numeric * v_rate.input_credits_per_1k
        + coalesce(p_output_tokens, 0)::numeric * v_rate.output_credits_per_1k) / 1000
    );
    IF v_credits > 2147483647 THEN
        RAISE EXCEPTION 'the run would cost % credits, more than an integer holds', v_credits
            USING ERRCODE = 'OF006';
    END IF;
    RETURN v_credits::integer;
END
$fn$;
COMMENT ON FUNCTION farmops.credits_for_tokens(text, timestamptz, integer, integer) IS
'Credits for token counts at the rate in force at p_at, rounded up (NULL tokens count as 0); OF006 for '
'negative counts, OF108 if no rate is in force.';

CREATE OR REPLACE FUNCTION farmops.estimate_credits(
    p_model text, p_max_input_tokens integer, p_max_output_tokens integer
)
RETURNS integer
LANGUAGE plpgsql
STABLE
-- Definer only to call the private argument checks; it reads nothing but the global price list.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_model text := farmops._text_argument(p_model, 'model', 200);
BEGIN
    PERFORM farmops._assert_in_range(p_max_input_tokens, 'max input tokens', 0, 2147483647);
    PERFORM farmops._assert_in_range(p_max_output_tokens, 'max output tokens', 0, 2147483647);
    -- At least 1: reserve_credits refuses 0, and every run reserves something.
    RETURN greatest(1, farmops.credits_for_tokens(v_model, now(), p_max_input_tokens, p_max_output_tokens));
END
$fn$;
COMMENT ON FUNCTION farmops.estimate_credits(text, integer, integer) IS
'Upper bound of credits to reserve for a call of p_model with at most these tokens (rounded up, at least 1).';

CREATE OR REPLACE FUNCTION farmops.set_model_rate(
    p_model text,
    p_input_credits_per_1k integer,
    p_output_credits_per_1k integer,
    p_effective_from timestamptz DEFAULT now()
)
RETURNS farmops.model_rates
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    -- SECURITY INVOKER and never granted to farmops_app: only the package owner sets prices.
    v_model text := farmops._text_argument(p_model, 'model', 200);
    v_rate farmops.model_rates;
BEGIN
    PERFORM farmops._assert_in_range(p_input_credits_per_1k, 'input credits per 1k', 0, 2147483647);
    PERFORM farmops._assert_in_range(p_output_credits_per_1k, 'output credits per 1k', 0, 2147483647);
    -- History is immutable: a rate may start now or later, never in the past.
    IF p_effective_from IS NULL OR p_effective_from < now() THEN
        RAISE EXCEPTION 'a rate cannot take effect in the past (%)', p_effective_from USING ERRCODE = 'OF006';
    END IF;
    -- 'infinity' would never take effect; clients cannot load infinite timestamps either.
    IF NOT isfinite(p_effective_from) THEN
        RAISE EXCEPTION 'a rate takes effect at a finite instant, not %', p_effective_from USING ERRCODE = 'OF006';
    END IF;
    -- One table holds credit rates and prices (0095): a new credit rate keeps the price
    -- of the model's own row in force at that instant (none: the model stays unpriced).
    INSERT INTO farmops.model_rates AS r (
        model, effective_from, input_credits_per_1k, output_credits_per_1k,
        input_micro_usd_per_1k, output_micro_usd_per_1k, cache_read_micro_usd_per_1k, cache_write_micro_usd_per_1k,
        price_source
    )
    SELECT v_model, p_effective_from, p_input_credits_per_1k, p_output_credits_per_1k,
        o.input_micro_usd_per_1k, o.output_micro_usd_per_1k, o.cache_read_micro_usd_per_1k,
        o.cache_write_micro_usd_per_1k, o.price_source
    FROM (SELECT) AS one
    LEFT JOIN LATERAL (
        SELECT p.* FROM farmops.model_rates AS p
        WHERE p.model = v_model AND p.effective_from <= p_effective_from
        ORDER BY p.effective_from DESC LIMIT 1
    ) AS o ON true
    ON CONFLICT (model, effective_from) DO UPDATE
    SET input_credits_per_1k = excluded.input_credits_per_1k,
        output_credits_per_1k = excluded.output_credits_per_1k
    RETURNING r.* INTO v_rate;
    RETURN v_rate;
END
$fn$;
COMMENT ON FUNCTION farmops.set_model_rate(text, integer, integer, timestamptz) IS
'Package owner only: sets a model''s (or ''*'') credits per 1k input/output tokens from p_effective_from on '
'(now or later, finite; OF006 otherwise).';
