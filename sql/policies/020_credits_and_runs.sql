-- Row level security, grants and guards for runs, the credit ledger and model
-- rates. Members read their own farm's rows; every write goes through a function:
-- viewers may not reserve or settle, agents may not grant, only owners grant
-- (those role rules live in the functions, via farmops.require_tenant(roles)).

ALTER TABLE farmops.ai_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE farmops.ai_runs FORCE ROW LEVEL SECURITY;
ALTER TABLE farmops.credit_ledger ENABLE ROW LEVEL SECURITY;
ALTER TABLE farmops.credit_ledger FORCE ROW LEVEL SECURITY;
ALTER TABLE farmops.model_rates ENABLE ROW LEVEL SECURITY;
ALTER TABLE farmops.model_rates FORCE ROW LEVEL SECURITY;

GRANT SELECT ON farmops.ai_runs, farmops.credit_ledger, farmops.model_rates TO farmops_app;
GRANT EXECUTE ON FUNCTION
farmops.grant_credits(uuid, integer, text),
farmops.reserve_credits(text, text, integer, text, interval, text),
farmops.reserve_run(uuid, text, text, text, integer, integer, integer, text, interval, text),
farmops.start_run(uuid),
farmops.settle_run(uuid, text, integer, integer, integer, integer, text, text),
farmops.expire_reservations(integer),
farmops.check_invariants(uuid),
farmops.estimate_credits(text, integer, integer),
-- estimate_credits and check_invariants run as the caller and call these.
farmops.credits_for_tokens(text, timestamptz, integer, integer),
farmops.model_rate_at(text, timestamptz)
TO farmops_app;

DROP POLICY IF EXISTS "members see their own farm's runs" ON farmops.ai_runs;
CREATE POLICY "members see their own farm's runs" ON farmops.ai_runs
FOR SELECT TO farmops_app
USING (farm_id = (SELECT farmops.current_farm_id()));

DROP POLICY IF EXISTS "the package owner maintains every run" ON farmops.ai_runs;
CREATE POLICY "the package owner maintains every run" ON farmops.ai_runs
FOR ALL TO farmops_owner
USING (true) WITH CHECK (true);

DROP POLICY IF EXISTS "members see their own farm's ledger" ON farmops.credit_ledger;
CREATE POLICY "members see their own farm's ledger" ON farmops.credit_ledger
FOR SELECT TO farmops_app
USING (farm_id = (SELECT farmops.current_farm_id()));

-- No UPDATE or DELETE policy exists for anyone: the ledger only grows.
DROP POLICY IF EXISTS "the package owner reads every ledger" ON farmops.credit_ledger;
CREATE POLICY "the package owner reads every ledger" ON farmops.credit_ledger
FOR SELECT TO farmops_owner
USING (true);

DROP POLICY IF EXISTS "the package owner appends to every ledger" ON farmops.credit_ledger;
CREATE POLICY "the package owner appends to every ledger" ON farmops.credit_ledger
FOR INSERT TO farmops_owner
WITH CHECK (true);

DROP POLICY IF EXISTS "every application session reads the model rates" ON farmops.model_rates;
CREATE POLICY "every application session reads the model rates" ON farmops.model_rates
FOR SELECT TO farmops_app
USING (true);

DROP POLICY IF EXISTS "the package owner sets the model rates" ON farmops.model_rates;
CREATE POLICY "the package owner sets the model rates" ON farmops.model_rates
FOR ALL TO farmops_owner
USING (true) WITH CHECK (true);

-- Append-only, twice over: nobody holds the privileges (the owner gave up its own),
-- and triggers that fire even for superusers and in replica mode refuse the change.
REVOKE UPDATE, DELETE, TRUNCATE ON farmops.credit_ledger FROM public, farmops_app, farmops_owner;

CREATE OR REPLACE TRIGGER credit_ledger_is_append_only
BEFORE UPDATE OR DELETE ON farmops.credit_ledger
FOR EACH ROW EXECUTE FUNCTION farmops.refuse_ledger_change();
ALTER TABLE farmops.credit_ledger ENABLE ALWAYS TRIGGER credit_ledger_is_append_only;

CREATE OR REPLACE TRIGGER credit_ledger_is_never_truncated
BEFORE TRUNCATE ON farmops.credit_ledger
FOR EACH STATEMENT EXECUTE FUNCTION farmops.refuse_ledger_change();
ALTER TABLE farmops.credit_ledger ENABLE ALWAYS TRIGGER credit_ledger_is_never_truncated;

-- Run states move forward only, whoever writes.
CREATE OR REPLACE TRIGGER ai_runs_move_forward_only
BEFORE UPDATE ON farmops.ai_runs
FOR EACH ROW EXECUTE FUNCTION farmops.check_run_transition();
ALTER TABLE farmops.ai_runs ENABLE ALWAYS TRIGGER ai_runs_move_forward_only;
