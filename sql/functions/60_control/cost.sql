-- Money cost (issue 14 §3): provider prices live beside the credit rates in
-- farmops.model_rates (0095), effective-dated, in integer micro-dollars per 1k tokens.
-- The latest row of a model in force is its price; a row without a price (or no row)
-- falls back to the '*' row in force, and without a priced '*' row the model is
-- unknown: reserving it fails closed (OF410). The database computes every cost.

CREATE OR REPLACE FUNCTION farmops._model_price(p_model text, p_at timestamptz)
RETURNS farmops.model_rates
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    -- The latest row of the model in force if it is priced, else the latest '*' row in
    -- force if that one is priced; NULL (no row) otherwise.
    SELECT x.*
    FROM (
        SELECT DISTINCT ON (r.model) r.*
        FROM farmops.model_rates AS r
        WHERE r.model IN (p_model, '*') AND r.effective_from <= p_at
        ORDER BY r.model, r.effective_from DESC
    ) AS x
    WHERE x.input_micro_usd_per_1k IS NOT NULL
    ORDER BY (x.model = p_model) DESC
    LIMIT 1
$fn$;
COMMENT ON FUNCTION farmops._model_price(text, timestamptz) IS
'Private: the priced rate row in force for a model at an instant (its own, else ''*''), or no row.';

CREATE OR REPLACE FUNCTION farmops.model_price_at(p_model text, p_at timestamptz DEFAULT now())
RETURNS farmops.model_rates
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_price farmops.model_rates := farmops._model_price(p_model, p_at);
BEGIN
    IF v_price.model IS NULL THEN
        RAISE EXCEPTION 'model % has no price at % and no default price is set', p_model, p_at
            USING ERRCODE = 'OF410',
            HINT = 'the package owner sets one with farmops.set_model_price(model, ...) or a default with model ''*''';
    END IF;
    RETURN v_price;
END
$fn$;
COMMENT ON FUNCTION farmops.model_price_at(text, timestamptz) IS
'The priced rate row in force for a model at an instant (its own, else the ''*'' default); OF410 if none: an '
'unknown model fails closed.';

CREATE OR REPLACE FUNCTION farmops._cost_of(
    p_price farmops.model_rates,
    p_input_tokens bigint,
    p_output_tokens bigint,
    p_cache_read_tokens bigint,
    p_cache_write_tokens bigint
)
RETURNS bigint
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    -- Micro-dollars, rounded up; NULL token counts are 0; cache prices default to input.
    SELECT ceil((
        coalesce(p_input_tokens, 0)::numeric * p_price.input_micro_usd_per_1k
        + coalesce(p_output_tokens, 0)::numeric * p_price.output_micro_usd_per_1k
        + coalesce(p_cache_read_tokens, 0)::numeric
        * coalesce(p_price.cache_read_micro_usd_per_1k, p_price.input_micro_usd_per_1k)
        + coalesce(p_cache_write_tokens, 0)::numeric
        * coalesce(p_price.cache_write_micro_usd_per_1k, p_price.input_micro_usd_per_1k)
    ) / 1000)::bigint
$fn$;
COMMENT ON FUNCTION farmops._cost_of(farmops.model_rates, bigint, bigint, bigint, bigint) IS
'Private: micro-dollars for token counts at a price row, rounded up (NULL counts are 0).';

CREATE OR REPLACE FUNCTION farmops.cost_for_tokens(
    p_model text,
    p_at timestamptz,
    p_input_tokens integer,
    p_output_tokens integer,
    p_cache_read_tokens integer DEFAULT NULL,
    p_cache_write_tokens integer DEFAULT NULL
)
RETURNS bigint
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_model text := farmops._text_argument(p_model, 'model', 200);
BEGIN
    PERFORM farmops._assert_given(p_at, 'instant');
    IF p_input_tokens < 0 OR p_output_tokens < 0 OR p_cache_read_tokens < 0 OR p_cache_write_tokens < 0 THEN
        RAISE EXCEPTION 'token counts must not be negative' USING ERRCODE = 'OF006';
    END IF;
    RETURN farmops._cost_of(
        farmops.model_price_at(v_model, p_at), p_input_tokens, p_output_tokens, p_cache_read_tokens,
        p_cache_write_tokens
    );
END
$fn$;
COMMENT ON FUNCTION farmops.cost_for_tokens(text, timestamptz, integer, integer, integer, integer) IS
'Micro-dollars for token counts of a model at the price in force at p_at, rounded up (NULL counts are 0). '
'OF410 unpriced model, OF006 negative counts.';

CREATE OR REPLACE FUNCTION farmops._money_bound(p_model text, p_at timestamptz, p_credits bigint)
RETURNS bigint
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    -- Raises OF410 for an unknown model, OF108 without a credit rate.
    v_price farmops.model_rates := farmops.model_price_at(p_model, p_at);
    v_rate farmops.model_rates := farmops.model_rate_at(p_model, p_at);
    v_bound numeric := 0;
    v_kind record;
BEGIN
    -- The most money p_credits can buy: credits are charged per 1k input tokens (cache
    -- tokens count as input) and per 1k output tokens, so the worst case spends every
    -- credit on the kind with the highest price per credit. A kind that is priced but
    -- costs no credits has no bound: NULL.
    FOR v_kind IN
        SELECT * FROM (VALUES
            (v_price.input_micro_usd_per_1k, v_rate.input_credits_per_1k),
            (v_price.output_micro_usd_per_1k, v_rate.output_credits_per_1k),
            (coalesce(v_price.cache_read_micro_usd_per_1k, v_price.input_micro_usd_per_1k), v_rate.input_credits_per_1k),
            (coalesce(v_price.cache_write_micro_usd_per_1k, v_price.input_micro_usd_per_1k), v_rate.input_credits_per_1k)
        ) AS k (price, credits)
    LOOP
        CONTINUE WHEN v_kind.price = 0;
        IF v_kind.credits = 0 THEN
            RETURN NULL;
        END IF;
        v_bound := greatest(v_bound, ceil(p_credits::numeric * v_kind.price / v_kind.credits));
    END LOOP;
    RETURN v_bound::bigint;
END
$fn$;
COMMENT ON FUNCTION farmops._money_bound(text, timestamptz, bigint) IS
'Private: the most micro-dollars a reservation of p_credits of a model can cost (NULL: unbounded, a priced '
'token kind is free in credits); OF410 unknown model.';

CREATE OR REPLACE FUNCTION farmops.set_model_price(
    p_model text,
    p_input_micro_usd_per_1k bigint,
    p_output_micro_usd_per_1k bigint,
    p_cache_read_micro_usd_per_1k bigint DEFAULT NULL,
    p_cache_write_micro_usd_per_1k bigint DEFAULT NULL,
    p_source text DEFAULT NULL,
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
    v_source text := farmops._text_argument(p_source, 'price source', 500, 'line', false);
    v_credits farmops.model_rates;
    v_rate farmops.model_rates;
BEGIN
    -- Both NULL clears the price from then on (a '*' without a price: unknown models fail closed again).
    IF (p_input_micro_usd_per_1k IS NULL) <> (p_output_micro_usd_per_1k IS NULL)
        OR (p_input_micro_usd_per_1k IS NULL
            AND (p_cache_read_micro_usd_per_1k IS NOT NULL OR p_cache_write_micro_usd_per_1k IS NOT NULL)) THEN
        RAISE EXCEPTION 'give input and output prices together (both NULL clears the price)' USING ERRCODE = 'OF006';
    END IF;
    -- At most $1000 per 1k tokens of any kind (NULL: not given).
    IF EXISTS (
        SELECT FROM unnest(ARRAY[p_input_micro_usd_per_1k, p_output_micro_usd_per_1k, p_cache_read_micro_usd_per_1k,
            p_cache_write_micro_usd_per_1k]) AS p (v)
        WHERE p.v NOT BETWEEN 0 AND 1000000000
    ) THEN
        RAISE EXCEPTION 'prices are 0 to 1000000000 micro-USD per 1k tokens' USING ERRCODE = 'OF006';
    END IF;
    IF p_effective_from IS NULL OR p_effective_from < now() OR NOT isfinite(p_effective_from) THEN
        RAISE EXCEPTION 'a price takes effect now or later, at a finite instant (not %)', p_effective_from
            USING ERRCODE = 'OF006';
    END IF;
    -- The credit rates stay what is in force for the model then (its own, else '*').
    v_credits := farmops.model_rate_at(v_model, p_effective_from);
    INSERT INTO farmops.model_rates AS r (
        model, effective_from, input_credits_per_1k, output_credits_per_1k,
        input_micro_usd_per_1k, output_micro_usd_per_1k, cache_read_micro_usd_per_1k, cache_write_micro_usd_per_1k,
        price_source
    )
    VALUES (
        v_model, p_effective_from, v_credits.input_credits_per_1k, v_credits.output_credits_per_1k,
        p_input_micro_usd_per_1k, p_output_micro_usd_per_1k, p_cache_read_micro_usd_per_1k,
        p_cache_write_micro_usd_per_1k, v_source
    )
    ON CONFLICT (model, effective_from) DO UPDATE
    SET input_micro_usd_per_1k = excluded.input_micro_usd_per_1k,
        output_micro_usd_per_1k = excluded.output_micro_usd_per_1k,
        cache_read_micro_usd_per_1k = excluded.cache_read_micro_usd_per_1k,
        cache_write_micro_usd_per_1k = excluded.cache_write_micro_usd_per_1k,
        price_source = excluded.price_source
    RETURNING r.* INTO v_rate;
    RETURN v_rate;
END
$fn$;
COMMENT ON FUNCTION farmops.set_model_price(text, bigint, bigint, bigint, bigint, text, timestamptz) IS
'Package owner only: a model''s (or the ''*'' default''s) price in micro-dollars per 1k input, output, cache-read '
'and cache-write tokens from p_effective_from on (now or later); keeps its credit rates. Input and output NULL '
'clears the price. OF006.';

CREATE OR REPLACE FUNCTION farmops.record_usage(
    p_model text,
    p_input_tokens integer,
    p_output_tokens integer DEFAULT 0,
    p_feature text DEFAULT NULL,
    p_run_id uuid DEFAULT NULL
)
RETURNS farmops.model_usage
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    -- Metering is an obligation, not a privilege: any member's call to the provider
    -- (a viewer's search embeds its query) is recorded.
    v_farm uuid := farmops.require_capability('read');
    v_feature text := farmops._text_argument(p_feature, 'feature', 100, 'line', false);
    v_model text := farmops._text_argument(p_model, 'model', 200);
    v_usage farmops.model_usage;
    v_cost bigint;
BEGIN
    PERFORM farmops._assert_in_range(p_input_tokens, 'input tokens', 0, 2147483647);
    PERFORM farmops._assert_in_range(coalesce(p_output_tokens, 0), 'output tokens', 0, 2147483647);
    v_cost := farmops._cost_of(farmops.model_price_at(v_model, now()), p_input_tokens, p_output_tokens, 0, 0);
    IF p_run_id IS NOT NULL THEN
        -- A call serving a run is a leg of it: it counts under the run's feature.
        SELECT r.feature INTO v_feature FROM farmops.ai_runs AS r WHERE r.farm_id = v_farm AND r.id = p_run_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'run % not found', p_run_id USING ERRCODE = 'OF102';
        END IF;
    ELSIF v_feature IS NULL THEN
        RAISE EXCEPTION 'feature is required for a call that serves no run' USING ERRCODE = 'OF006';
    END IF;
    INSERT INTO farmops.model_usage AS u (farm_id, ai_run_id, user_id, feature, model, input_tokens, output_tokens,
        cost_micro_usd)
    VALUES (v_farm, p_run_id, farmops.current_user_id(), v_feature, v_model, p_input_tokens,
        coalesce(p_output_tokens, 0), v_cost)
    RETURNING u.* INTO v_usage;
    -- Spent money counts against the farm's budgets (post-paid: the call happened).
    PERFORM farmops._spend_on_budgets(v_farm, v_feature, v_usage.recorded_at, v_cost, NULL);
    RETURN v_usage;
END
$fn$;
COMMENT ON FUNCTION farmops.record_usage(text, integer, integer, text, uuid) IS
'Meters a provider call that is not a run''s own model call (embeddings of ingest, memories, searches, a run''s '
'prompt): tokens and micro-dollars computed by the database, counted as spent in the farm''s budgets. With '
'p_run_id it is a leg of that run (the run''s feature); else p_feature names it. Any member. OF410 unpriced '
'model, OF102 unknown run, OF006.';

-- Metered calls and fired alerts are history: never updated or deleted.
SELECT farmops._attach_append_only('farmops.model_usage');
SELECT farmops._attach_append_only('farmops.budget_alerts');
