-- Rate limits (issue 14 §2) and the reservation's control step.
--
-- GCRA (generic cell rate algorithm, ADR 0022): each limited key keeps ONE
-- timestamp, its theoretical arrival time (TAT). A limit of N per minute spaces
-- requests by T = 1 minute / N; a request is admitted while the key's TAT is at
-- most (N - 1) T ahead of now, and moves it to max(TAT, now) + T. So N requests
-- pass at once from idle, then one every T: a sliding minute, with no counters
-- per window and no cleanup job (an old TAT is simply in the past). Tokens work
-- the same with T = 1 minute * tokens / limit (rounded up to the microsecond: a
-- burst never exceeds the limit).
--
-- Where the state lives: the farm's on the farm row, moved by the same conditional
-- UPDATE that debits the credits (no extra lock: the reservation already takes the
-- farm row, last); each member's on the member's own row, moved in the same
-- statement just before (only when a member limit applies). So the check and the
-- count are one atomic step with the debit, across any number of replicas; a
-- refused or failed reservation moves nothing (it rolls back).

CREATE OR REPLACE FUNCTION farmops._tokens_of_request(p_model text, p_credits integer, p_tokens bigint)
RETURNS bigint
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- The request's token bound as given (reserve_run: max input + output tokens), else
    -- derived from the credits at the model's cheaper rate in force (an upper bound).
    RETURN coalesce(
        p_tokens,
        (
            SELECT ceil(p_credits::numeric * 1000 / greatest(least(r.input_credits_per_1k, r.output_credits_per_1k), 1))
            FROM farmops.model_rates AS r
            WHERE r.model IN (p_model, '*') AND r.effective_from <= now()
            ORDER BY (r.model = p_model) DESC, r.effective_from DESC
            LIMIT 1
        )::bigint,
        p_credits::bigint * 1000
    );
END
$fn$;
COMMENT ON FUNCTION farmops._tokens_of_request(text, integer, bigint) IS
'Private: the tokens a reservation counts against token limits: p_tokens, else credits at the model''s cheaper '
'rate (credits * 1000 without a rate).';

CREATE OR REPLACE FUNCTION farmops._gcra_step(p_cost bigint, p_per_minute integer)
RETURNS interval
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    -- Requests: 1 minute / N rounded down (the room below makes exactly N pass);
    -- tokens: rounded up. NULL without a limit.
    SELECT CASE
        WHEN p_per_minute IS NULL THEN NULL
        WHEN p_cost IS NULL THEN interval '1 microsecond' * (60000000 / p_per_minute)
        ELSE interval '1 microsecond' * ceil(60000000::numeric * p_cost / p_per_minute)::bigint
    END
$fn$;
COMMENT ON FUNCTION farmops._gcra_step(bigint, integer) IS
'Private: how far one request moves a GCRA key (p_cost NULL: one request of a per-minute request limit; else '
'p_cost tokens of a per-minute token limit).';

CREATE OR REPLACE FUNCTION farmops._control_reserve(
    p_farm_id uuid,
    p_user_id text,
    p_feature text,
    p_model text,
    p_credits integer,
    p_tokens bigint,
    OUT hold_rule text,
    OUT tokens bigint,
    OUT member_limited boolean,
    OUT member_requests_step interval,
    OUT member_requests_room interval,
    OUT member_tokens_step interval,
    OUT member_tokens_room interval,
    OUT farm_requests_step interval,
    OUT farm_requests_room interval,
    OUT farm_tokens_step interval,
    OUT farm_tokens_room interval
)
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_limits record;
    v_decision record;
BEGIN
    -- The reservation's control step (one call line in 20_credits/reserve.sql): the
    -- policy decision and the limits that apply, read in one statement without locking
    -- anything; the GCRA keys move in _reserve's statement. Nothing else runs for a farm
    -- without rules or limits.
    SELECT m.role, f.requests_per_minute AS farm_rpm, f.tokens_per_minute AS farm_tpm,
        coalesce(m.requests_per_minute, f.member_requests_per_minute) AS member_rpm,
        coalesce(m.tokens_per_minute, f.member_tokens_per_minute) AS member_tpm,
        now() AT TIME ZONE f.time_zone AS local_now,
        EXISTS (SELECT FROM farmops.policies AS p WHERE p.farm_id = f.id AND p.action = 'reserve')
        OR EXISTS (SELECT FROM farmops.default_policies AS d WHERE d.action = 'reserve') AS has_rules
    INTO v_limits
    FROM farmops.farms AS f
    LEFT JOIN farmops.farm_members AS m ON m.farm_id = f.id AND m.user_id = p_user_id
    WHERE f.id = p_farm_id;

    member_limited := v_limits.member_rpm IS NOT NULL OR v_limits.member_tpm IS NOT NULL;
    tokens := p_tokens;
    IF tokens IS NULL AND (v_limits.has_rules OR v_limits.farm_tpm IS NOT NULL OR v_limits.member_tpm IS NOT NULL) THEN
        tokens := farmops._tokens_of_request(p_model, p_credits, p_tokens);
    END IF;
    -- The steps (farmops._gcra_step, written out: this runs on every reservation).
    IF v_limits.farm_rpm IS NOT NULL THEN
        farm_requests_step := interval '1 microsecond' * (60000000 / v_limits.farm_rpm);
        farm_requests_room := farm_requests_step * (v_limits.farm_rpm - 1);
    END IF;
    IF v_limits.member_rpm IS NOT NULL THEN
        member_requests_step := interval '1 microsecond' * (60000000 / v_limits.member_rpm);
        member_requests_room := member_requests_step * (v_limits.member_rpm - 1);
    END IF;
    IF v_limits.farm_tpm IS NOT NULL THEN
        farm_tokens_step := interval '1 microsecond' * ceil(60000000::numeric * tokens / v_limits.farm_tpm)::bigint;
        farm_tokens_room := interval '1 minute' - farm_tokens_step;
    END IF;
    IF v_limits.member_tpm IS NOT NULL THEN
        member_tokens_step := interval '1 microsecond'
            * ceil(60000000::numeric * tokens / v_limits.member_tpm)::bigint;
        member_tokens_room := interval '1 minute' - member_tokens_step;
    END IF;
    IF farm_tokens_room < interval '0' OR member_tokens_room < interval '0' THEN
        RAISE EXCEPTION 'a request of % tokens exceeds the % tokens per minute limit: it can never pass', tokens,
            least(v_limits.farm_tpm, v_limits.member_tpm)
            USING ERRCODE = 'OF405',
            DETAIL = format('tokens=%s farm_tokens_per_minute=%s member_tokens_per_minute=%s', tokens,
                coalesce(v_limits.farm_tpm::text, 'none'), coalesce(v_limits.member_tpm::text, 'none'));
    END IF;

    IF v_limits.has_rules THEN
        SELECT d.* INTO v_decision FROM farmops._policy_decision(p_farm_id, 'reserve', jsonb_build_object(
            'feature', p_feature, 'model', p_model, 'role', v_limits.role, 'credits', p_credits, 'tokens', tokens,
            'hour', extract(HOUR FROM v_limits.local_now)::integer,
            'weekday', extract(ISODOW FROM v_limits.local_now)::integer
        )) AS d;
        PERFORM farmops._assert_policy_allows('reserving credits', v_decision.decision, v_decision.rule_name,
            v_decision.rule_source, v_decision.explanation);
        IF v_decision.decision = 'require_approval' THEN
            hold_rule := v_decision.rule_name;
        END IF;
    END IF;
END
$fn$;
COMMENT ON FUNCTION farmops._control_reserve(uuid, text, text, text, integer, bigint) IS
'Private (_reserve''s control step): OF401 when a reserve policy denies, the rule that holds the run for '
'approval, the request''s tokens and the GCRA steps of the farm''s and member''s limits (OF405: one request '
'larger than a token limit).';

CREATE OR REPLACE FUNCTION farmops._gcra_wait(
    p_tat timestamptz, p_cost bigint, p_per_minute integer, p_is_requests boolean
)
RETURNS interval
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    -- How long until a key admits this request (0 or less: now).
    SELECT greatest(p_tat, clock_timestamp()) - clock_timestamp() - CASE
        WHEN p_is_requests THEN farmops._gcra_step(NULL, p_per_minute) * (p_per_minute - 1)
        ELSE interval '1 minute' - farmops._gcra_step(p_cost, p_per_minute)
    END
$fn$;
COMMENT ON FUNCTION farmops._gcra_wait(timestamptz, bigint, integer, boolean) IS
'Private: the wait before a GCRA key admits one more request (<= 0: it would now); NULL without a limit.';

CREATE OR REPLACE FUNCTION farmops._assert_within_rate_limits(p_farm_id uuid, p_user_id text, p_tokens bigint)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_wait record;
BEGIN
    -- After a refused debit (_reserve): was it a limit? The longest wait of the keys that
    -- refuse, read from their latest state; the retry-after is that wait rounded up.
    SELECT w.what, w.wait INTO v_wait
    FROM farmops.farms AS f
    LEFT JOIN farmops.farm_members AS m ON m.farm_id = f.id AND m.user_id = p_user_id
    CROSS JOIN LATERAL (
        VALUES
        ('farm requests_per_minute=' || f.requests_per_minute,
            farmops._gcra_wait(f.requests_tat, NULL, f.requests_per_minute, true)),
        ('farm tokens_per_minute=' || f.tokens_per_minute,
            farmops._gcra_wait(f.tokens_tat, p_tokens, f.tokens_per_minute, false)),
        ('member requests_per_minute=' || coalesce(m.requests_per_minute, f.member_requests_per_minute),
            farmops._gcra_wait(m.requests_tat, NULL, coalesce(m.requests_per_minute, f.member_requests_per_minute),
                true)),
        ('member tokens_per_minute=' || coalesce(m.tokens_per_minute, f.member_tokens_per_minute),
            farmops._gcra_wait(m.tokens_tat, p_tokens, coalesce(m.tokens_per_minute, f.member_tokens_per_minute),
                false))
    ) AS w (what, wait)
    WHERE f.id = p_farm_id AND w.wait > interval '0'
    ORDER BY w.wait DESC
    LIMIT 1;
    IF FOUND THEN
        PERFORM farmops._refuse_over_rate_limit(p_farm_id, split_part(v_wait.what, ' ', 1),
            substr(v_wait.what, strpos(v_wait.what, ' ') + 1), ceil(extract(EPOCH FROM v_wait.wait))::integer);
    END IF;
END
$fn$;
COMMENT ON FUNCTION farmops._assert_within_rate_limits(uuid, text, bigint) IS
'Private: OF402 (DETAIL retry_after=<seconds> limit=<which>) when a farm or member limit refuses one more '
'request of p_tokens now.';

CREATE OR REPLACE FUNCTION farmops.set_rate_limits(
    p_requests_per_minute integer,
    p_tokens_per_minute integer,
    p_scope text DEFAULT 'farm',
    p_user_id text DEFAULT NULL
)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability('set_rate_limits');
    v_user text := farmops._text_argument(p_user_id, 'user id', 256, 'line', false);
BEGIN
    -- NULL = no limit (for one member: the farm's per-member limit applies).
    IF p_requests_per_minute IS NOT NULL THEN
        PERFORM farmops._assert_in_range(p_requests_per_minute, 'requests per minute', 1, 1000000);
    END IF;
    IF p_tokens_per_minute IS NOT NULL THEN
        PERFORM farmops._assert_in_range(p_tokens_per_minute, 'tokens per minute', 1, 1000000000);
    END IF;
    IF p_scope IS NULL OR p_scope NOT IN ('farm', 'members', 'member') THEN
        RAISE EXCEPTION 'scope must be farm (the whole farm), members (each member) or member (one member)'
            USING ERRCODE = 'OF006';
    END IF;
    IF (p_scope = 'member') <> (v_user IS NOT NULL) THEN
        RAISE EXCEPTION 'a user id goes with scope member, and only with it' USING ERRCODE = 'OF006';
    END IF;
    -- One row per call (the farm's, or one member's): never the member row after the
    -- farm row, the reverse of a reservation's order. The refusal counters come first.
    PERFORM farmops._ensure_rate_limit_counters(v_farm);
    IF p_scope = 'farm' THEN
        UPDATE farmops.farms AS f SET requests_per_minute = p_requests_per_minute,
            tokens_per_minute = p_tokens_per_minute
        WHERE f.id = v_farm;
    ELSIF p_scope = 'members' THEN
        UPDATE farmops.farms AS f SET member_requests_per_minute = p_requests_per_minute,
            member_tokens_per_minute = p_tokens_per_minute
        WHERE f.id = v_farm;
    ELSE
        UPDATE farmops.farm_members AS m SET requests_per_minute = p_requests_per_minute,
            tokens_per_minute = p_tokens_per_minute
        WHERE m.farm_id = v_farm AND m.user_id = v_user;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'user is not a member of farm %', v_farm USING ERRCODE = 'OF002';
        END IF;
    END IF;
END
$fn$;
COMMENT ON FUNCTION farmops.set_rate_limits(integer, integer, text, text) IS
'Owner (set_rate_limits): requests and model tokens per minute for p_scope farm (the whole farm), members (each '
'member without their own) or member (p_user_id); NULL = no limit. Enforced in the reservation''s debit '
'(OF402 with retry_after). OF002 unknown member, OF003, OF006.';

CREATE OR REPLACE FUNCTION farmops.rate_limits()
RETURNS TABLE (
    scope text, user_id text, requests_per_minute integer, tokens_per_minute integer,
    requests_available integer, tokens_available bigint
)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    v_farm uuid := farmops.require_capability('read');
BEGIN
    -- Available now = what the key admits at once (a full minute's worth when idle).
    RETURN QUERY
    SELECT l.scope, l.user_id, l.rpm, l.tpm,
        CASE WHEN l.rpm IS NOT NULL THEN least(l.rpm, greatest(0, floor(
            extract(EPOCH FROM farmops._gcra_step(NULL, l.rpm) * l.rpm - (greatest(l.rtat, now()) - now()))
            / extract(EPOCH FROM farmops._gcra_step(NULL, l.rpm))
        )))::integer END,
        CASE WHEN l.tpm IS NOT NULL THEN least(l.tpm, greatest(0, floor(
            extract(EPOCH FROM interval '1 minute' - (greatest(l.ttat, now()) - now())) * l.tpm / 60
        )))::bigint END
    FROM (
        SELECT 1 AS o, 'farm' AS scope, NULL::text AS user_id, f.requests_per_minute AS rpm,
            f.tokens_per_minute AS tpm, f.requests_tat AS rtat, f.tokens_tat AS ttat
        FROM farmops.farms AS f WHERE f.id = v_farm
        UNION ALL
        SELECT 2, 'members', NULL, f.member_requests_per_minute, f.member_tokens_per_minute, NULL, NULL
        FROM farmops.farms AS f WHERE f.id = v_farm
        UNION ALL
        SELECT 3, 'member', m.user_id, coalesce(m.requests_per_minute, f.member_requests_per_minute),
            coalesce(m.tokens_per_minute, f.member_tokens_per_minute), m.requests_tat, m.tokens_tat
        FROM farmops.farm_members AS m
        JOIN farmops.farms AS f ON f.id = m.farm_id
        WHERE m.farm_id = v_farm AND (
            m.requests_per_minute IS NOT NULL OR m.tokens_per_minute IS NOT NULL
            OR f.member_requests_per_minute IS NOT NULL OR f.member_tokens_per_minute IS NOT NULL
        )
    ) AS l
    ORDER BY l.o, l.user_id;
END
$fn$;
COMMENT ON FUNCTION farmops.rate_limits() IS
'Any member (read): the current farm''s limits (farm, members = each member''s default, member = each limited '
'member) and what each admits right now. OF001 without a tenant context.';

CREATE OR REPLACE FUNCTION farmops.set_farm_time_zone(p_time_zone text)
RETURNS text
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability('manage_policies');
    v_zone text := farmops._text_argument(p_time_zone, 'time zone', 64);
BEGIN
    BEGIN
        PERFORM now() AT TIME ZONE v_zone;
    EXCEPTION WHEN invalid_parameter_value THEN
        RAISE EXCEPTION 'unknown time zone %', v_zone USING ERRCODE = 'OF006',
            HINT = 'An IANA name such as Africa/Lagos (pg_timezone_names).';
    END;
    UPDATE farmops.farms AS f SET time_zone = v_zone WHERE f.id = v_farm;
    RETURN v_zone;
END
$fn$;
COMMENT ON FUNCTION farmops.set_farm_time_zone(text) IS
'Owner (manage_policies): the time zone in which the farm''s policies read hour and weekday (default UTC). '
'OF006 unknown zone.';

CREATE OR REPLACE FUNCTION farmops._count_extension_tokens(
    p_farm_id uuid, p_user_id text, p_model text, p_credits bigint
)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_limits record;
    v_tokens bigint;
    v_step interval;
BEGIN
    -- A run's hold grows by extensions (20_credits/extend.sql): the tokens it adds count
    -- against the token limits too, else a run reserving one call's bound and extending
    -- would pass them. Nothing runs without a token limit. The extension holds its run
    -- row, then this takes the member's row and the farm's row, in reserve's order; the
    -- farm row stays locked (a few statements) until the extension's debit commits.
    SELECT f.tokens_per_minute AS farm_tpm, coalesce(m.tokens_per_minute, f.member_tokens_per_minute) AS member_tpm
    INTO v_limits
    FROM farmops.farms AS f
    LEFT JOIN farmops.farm_members AS m ON m.farm_id = f.id AND m.user_id = p_user_id
    WHERE f.id = p_farm_id;
    IF v_limits.farm_tpm IS NULL AND v_limits.member_tpm IS NULL THEN
        RETURN;
    END IF;
    -- The credits added, as tokens at the model's cheaper rate (as a reservation without bounds).
    v_tokens := farmops._tokens_of_request(p_model, least(p_credits, 2147483647)::integer, NULL);
    IF v_limits.member_tpm IS NOT NULL THEN
        v_step := interval '1 microsecond' * ceil(60000000::numeric * v_tokens / v_limits.member_tpm)::bigint;
        IF v_step > interval '1 minute' THEN
            RAISE EXCEPTION 'extending by % tokens exceeds the member''s % tokens per minute: it can never pass',
                v_tokens, v_limits.member_tpm USING ERRCODE = 'OF405';
        END IF;
        UPDATE farmops.farm_members AS m
        SET tokens_tat = greatest(m.tokens_tat, clock_timestamp()) + v_step
        WHERE m.farm_id = p_farm_id AND m.user_id = p_user_id
            AND greatest(m.tokens_tat, clock_timestamp()) + v_step - clock_timestamp() <= interval '1 minute';
        IF NOT FOUND THEN
            PERFORM farmops._assert_within_rate_limits(p_farm_id, p_user_id, v_tokens);  -- OF402
            PERFORM farmops._refuse_over_rate_limit(p_farm_id, 'member', 'tokens_per_minute=' || v_limits.member_tpm, 1);
        END IF;
    END IF;
    IF v_limits.farm_tpm IS NOT NULL THEN
        v_step := interval '1 microsecond' * ceil(60000000::numeric * v_tokens / v_limits.farm_tpm)::bigint;
        IF v_step > interval '1 minute' THEN
            RAISE EXCEPTION 'extending by % tokens exceeds the farm''s % tokens per minute: it can never pass',
                v_tokens, v_limits.farm_tpm USING ERRCODE = 'OF405';
        END IF;
        UPDATE farmops.farms AS f
        SET tokens_tat = greatest(f.tokens_tat, clock_timestamp()) + v_step
        WHERE f.id = p_farm_id
            AND greatest(f.tokens_tat, clock_timestamp()) + v_step - clock_timestamp() <= interval '1 minute';
        IF NOT FOUND THEN
            PERFORM farmops._assert_within_rate_limits(p_farm_id, p_user_id, v_tokens);  -- OF402
            PERFORM farmops._refuse_over_rate_limit(p_farm_id, 'farm', 'tokens_per_minute=' || v_limits.farm_tpm, 1);
        END IF;
    END IF;
END
$fn$;
COMMENT ON FUNCTION farmops._count_extension_tokens(uuid, text, text, bigint) IS
'Private (extend_reservation): counts the tokens an extension adds against the member''s and the farm''s token '
'limits (GCRA); OF402 with retry_after when a limit refuses now, OF405 when it never could.';
