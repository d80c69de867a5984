-- The draft and recommendation state machines, enforced by triggers so that no
-- role (the package owner included) can move a terminal row or rewrite history.

CREATE OR REPLACE FUNCTION farmops.guard_draft_transition()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'drafts are the audit trail and are never deleted' USING ERRCODE = 'OF107';
    END IF;
    IF TG_OP = 'INSERT' THEN
        IF NEW.status NOT IN ('pending', 'auto_applied') THEN
            RAISE EXCEPTION 'a draft is created pending or auto_applied, not %', NEW.status USING ERRCODE = 'OF103';
        END IF;
        RETURN NEW;
    END IF;
    IF OLD.status <> 'pending' THEN
        RAISE EXCEPTION 'draft % is % (terminal): no further change', OLD.id, OLD.status USING ERRCODE = 'OF103';
    END IF;
    IF NEW.status NOT IN ('confirmed', 'discarded', 'expired') THEN
        RAISE EXCEPTION 'draft % cannot go from pending to %', OLD.id, NEW.status USING ERRCODE = 'OF103';
    END IF;
    IF (NEW.farm_id, NEW.id, NEW.ai_run_id, NEW.record_type, NEW.payload, NEW.created_by, NEW.created_at, NEW.expires_at)
        IS DISTINCT FROM
        (OLD.farm_id, OLD.id, OLD.ai_run_id, OLD.record_type, OLD.payload, OLD.created_by, OLD.created_at, OLD.expires_at)
        THEN
        RAISE EXCEPTION 'draft % : only the decision columns may change', OLD.id USING ERRCODE = 'OF103';
    END IF;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION farmops.guard_draft_transition() IS
'Trigger: drafts are created pending or auto_applied; only pending -> confirmed | discarded | expired; terminal '
'states are final; the proposal itself is immutable; no deletes (OF103 / OF107).';

CREATE OR REPLACE TRIGGER assistant_drafts_state_machine
BEFORE INSERT OR UPDATE OR DELETE ON farmops.assistant_drafts
FOR EACH ROW EXECUTE FUNCTION farmops.guard_draft_transition();
CREATE OR REPLACE TRIGGER assistant_drafts_no_truncate
BEFORE TRUNCATE ON farmops.assistant_drafts
FOR EACH STATEMENT EXECUTE FUNCTION farmops.refuse_history_rewrite();

CREATE OR REPLACE FUNCTION farmops.guard_recommendation_transition()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'recommendations are the audit trail and are never deleted' USING ERRCODE = 'OF107';
    END IF;
    IF TG_OP = 'INSERT' THEN
        IF NEW.status <> 'pending' THEN
            RAISE EXCEPTION 'a recommendation is created pending' USING ERRCODE = 'OF103';
        END IF;
        RETURN NEW;
    END IF;
    IF OLD.status <> 'pending' THEN
        RAISE EXCEPTION 'recommendation % is % (terminal): no further change', OLD.id, OLD.status
            USING ERRCODE = 'OF103';
    END IF;
    IF NEW.status NOT IN ('approved', 'rejected') THEN
        RAISE EXCEPTION 'recommendation % cannot go from pending to %', OLD.id, NEW.status USING ERRCODE = 'OF103';
    END IF;
    IF (NEW.farm_id, NEW.id, NEW.ai_run_id, NEW.title, NEW.body, NEW.created_by, NEW.created_at)
        IS DISTINCT FROM (OLD.farm_id, OLD.id, OLD.ai_run_id, OLD.title, OLD.body, OLD.created_by, OLD.created_at) THEN
        RAISE EXCEPTION 'recommendation % : only the decision columns may change', OLD.id USING ERRCODE = 'OF103';
    END IF;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION farmops.guard_recommendation_transition() IS
'Trigger: recommendations are created pending; only pending -> approved | rejected; terminal states final; no deletes.';

CREATE OR REPLACE TRIGGER ai_recommendations_state_machine
BEFORE INSERT OR UPDATE OR DELETE ON farmops.ai_recommendations
FOR EACH ROW EXECUTE FUNCTION farmops.guard_recommendation_transition();
CREATE OR REPLACE TRIGGER ai_recommendations_no_truncate
BEFORE TRUNCATE ON farmops.ai_recommendations
FOR EACH STATEMENT EXECUTE FUNCTION farmops.refuse_history_rewrite();
