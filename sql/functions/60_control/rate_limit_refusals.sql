-- Rate-limit refusals, counted where they are raised although the refusal rolls its
-- transaction back: each farm with a limit has a sequence per scope (schema 0140), and
-- nextval is never undone. A crash may advance a sequence by up to 32 (PostgreSQL logs
-- sequence values ahead), so after one the count can read up to 32 high.

CREATE OR REPLACE FUNCTION farmops._ensure_rate_limit_counters(p_farm_id uuid)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_scope text;
    v_counter text;
BEGIN
    -- Called where a limit is set: the sequences exist before the first refusal, since one
    -- created in a refused transaction would roll back too.
    IF EXISTS (SELECT FROM farmops._rate_limit_counters AS c WHERE c.farm_id = p_farm_id) THEN
        RETURN;
    END IF;
    FOREACH v_scope IN ARRAY ARRAY['farm', 'member'] LOOP
        v_counter := 'farmops._rate_limit_refusals_' || nextval('farmops._rate_limit_counter_numbers');
        INSERT INTO farmops._rate_limit_counters AS c (farm_id, scope, counter)
        VALUES (p_farm_id, v_scope, v_counter)
        ON CONFLICT (farm_id, scope) DO NOTHING;
        IF FOUND THEN
            EXECUTE format('CREATE SEQUENCE %s AS bigint', v_counter);
            EXECUTE format('REVOKE ALL ON SEQUENCE %s FROM PUBLIC', v_counter);
        END IF;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION farmops._ensure_rate_limit_counters(uuid) IS
'Private (set_rate_limits): makes the farm''s two refusal sequences (scopes farm and member) unless they exist.';

CREATE OR REPLACE FUNCTION farmops._refuse_over_rate_limit(
    p_farm_id uuid, p_scope text, p_limit text, p_retry_after integer
)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- The one place an OF402 is raised: counted first (a sequence survives the rollback).
    PERFORM nextval(c.counter::regclass)
    FROM farmops._rate_limit_counters AS c
    WHERE c.farm_id = p_farm_id AND c.scope = p_scope;
    RAISE EXCEPTION 'rate limit reached (% %): retry after % s', p_scope, p_limit, p_retry_after
        USING ERRCODE = 'OF402',
        DETAIL = format('retry_after=%s limit=%s %s', p_retry_after, p_scope, p_limit);
END
$fn$;
COMMENT ON FUNCTION farmops._refuse_over_rate_limit(uuid, text, text, integer) IS
'Private: counts one refusal of the farm''s p_scope (farm or member) limit, then raises OF402 (DETAIL '
'retry_after=<seconds> limit=<scope> <which>). SECURITY DEFINER: the refusal sequences are the owner''s.';

CREATE OR REPLACE FUNCTION farmops.rate_limit_refusals()
RETURNS TABLE (farm_id uuid, scope text, refusals bigint)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
    -- The sequences are the owner's, so this reads them for the caller and applies the
    -- caller's visibility itself: the farm of its tenant context, or every farm for the
    -- auditor and the package owner (session_user: the login, whatever role it set).
    SELECT c.farm_id, c.scope, coalesce(pg_catalog.pg_sequence_last_value(c.counter::regclass), 0)
    FROM farmops._rate_limit_counters AS c
    WHERE c.farm_id = farmops.current_farm_id()
        OR pg_catalog.pg_has_role(session_user, 'farmops_auditor', 'MEMBER')
        OR pg_catalog.pg_has_role(session_user, 'farmops_owner', 'MEMBER')
    ORDER BY c.farm_id, c.scope
$fn$;
COMMENT ON FUNCTION farmops.rate_limit_refusals() IS
'Rate-limit refusals (OF402) per farm and scope (farm: the farm''s limits; member: its members'') since the '
'farm first set a limit: the tenant context''s farm, or every farm for farmops_auditor and the package owner. '
'Counted although a refusal rolls back; after a crash a count may read up to 32 high.';

-- Farms that set a limit before the counters existed (an upgrade): idempotent.
DO $backfill$
DECLARE
    v_farm uuid;
BEGIN
    FOR v_farm IN
        SELECT f.id FROM farmops.farms AS f
        WHERE (
            f.requests_per_minute IS NOT NULL OR f.tokens_per_minute IS NOT NULL
            OR f.member_requests_per_minute IS NOT NULL OR f.member_tokens_per_minute IS NOT NULL
            OR EXISTS (
                SELECT FROM farmops.farm_members AS m
                WHERE m.farm_id = f.id AND (m.requests_per_minute IS NOT NULL OR m.tokens_per_minute IS NOT NULL)
            )
        )
        AND NOT EXISTS (SELECT FROM farmops._rate_limit_counters AS c WHERE c.farm_id = f.id)
    LOOP
        PERFORM farmops._ensure_rate_limit_counters(v_farm);
    END LOOP;
END
$backfill$;
