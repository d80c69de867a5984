-- Row level security and grants for the AI write path. Every tenant table is
-- ENABLEd and FORCEd; the application may only SELECT its own farm's rows and
-- writes through the SECURITY DEFINER functions granted below. The registries
-- (record_types, ai_eval_rules) are global reference tables: readable by all.

ALTER TABLE farmops.assistant_drafts ENABLE ROW LEVEL SECURITY;
ALTER TABLE farmops.assistant_drafts FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS "members see their own farm's drafts" ON farmops.assistant_drafts;
CREATE POLICY "members see their own farm's drafts" ON farmops.assistant_drafts
FOR SELECT TO farmops_app
USING (farm_id = (SELECT farmops.current_farm_id()));
DROP POLICY IF EXISTS "the package owner maintains every draft" ON farmops.assistant_drafts;
CREATE POLICY "the package owner maintains every draft" ON farmops.assistant_drafts
FOR ALL TO farmops_owner
USING (true) WITH CHECK (true);

ALTER TABLE farmops.autonomy_changes ENABLE ROW LEVEL SECURITY;
ALTER TABLE farmops.autonomy_changes FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS "members see their own farm's autonomy changes" ON farmops.autonomy_changes;
CREATE POLICY "members see their own farm's autonomy changes" ON farmops.autonomy_changes
FOR SELECT TO farmops_app
USING (farm_id = (SELECT farmops.current_farm_id()));
DROP POLICY IF EXISTS "the package owner maintains every autonomy change" ON farmops.autonomy_changes;
CREATE POLICY "the package owner maintains every autonomy change" ON farmops.autonomy_changes
FOR ALL TO farmops_owner
USING (true) WITH CHECK (true);

ALTER TABLE farmops.mortality_records ENABLE ROW LEVEL SECURITY;
ALTER TABLE farmops.mortality_records FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS "members see their own farm's mortality records" ON farmops.mortality_records;
CREATE POLICY "members see their own farm's mortality records" ON farmops.mortality_records
FOR SELECT TO farmops_app
USING (farm_id = (SELECT farmops.current_farm_id()));
DROP POLICY IF EXISTS "the package owner maintains every mortality record" ON farmops.mortality_records;
CREATE POLICY "the package owner maintains every mortality record" ON farmops.mortality_records
FOR ALL TO farmops_owner
USING (true) WITH CHECK (true);

ALTER TABLE farmops.feed_use_records ENABLE ROW LEVEL SECURITY;
ALTER TABLE farmops.feed_use_records FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS "members see their own farm's feed use records" ON farmops.feed_use_records;
CREATE POLICY "members see their own farm's feed use records" ON farmops.feed_use_records
FOR SELECT TO farmops_app
USING (farm_id = (SELECT farmops.current_farm_id()));
DROP POLICY IF EXISTS "the package owner maintains every feed use record" ON farmops.feed_use_records;
CREATE POLICY "the package owner maintains every feed use record" ON farmops.feed_use_records
FOR ALL TO farmops_owner
USING (true) WITH CHECK (true);

ALTER TABLE farmops.sale_records ENABLE ROW LEVEL SECURITY;
ALTER TABLE farmops.sale_records FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS "members see their own farm's sale records" ON farmops.sale_records;
CREATE POLICY "members see their own farm's sale records" ON farmops.sale_records
FOR SELECT TO farmops_app
USING (farm_id = (SELECT farmops.current_farm_id()));
DROP POLICY IF EXISTS "the package owner maintains every sale record" ON farmops.sale_records;
CREATE POLICY "the package owner maintains every sale record" ON farmops.sale_records
FOR ALL TO farmops_owner
USING (true) WITH CHECK (true);

ALTER TABLE farmops.expense_records ENABLE ROW LEVEL SECURITY;
ALTER TABLE farmops.expense_records FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS "members see their own farm's expense records" ON farmops.expense_records;
CREATE POLICY "members see their own farm's expense records" ON farmops.expense_records
FOR SELECT TO farmops_app
USING (farm_id = (SELECT farmops.current_farm_id()));
DROP POLICY IF EXISTS "the package owner maintains every expense record" ON farmops.expense_records;
CREATE POLICY "the package owner maintains every expense record" ON farmops.expense_records
FOR ALL TO farmops_owner
USING (true) WITH CHECK (true);

ALTER TABLE farmops.water_records ENABLE ROW LEVEL SECURITY;
ALTER TABLE farmops.water_records FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS "members see their own farm's water records" ON farmops.water_records;
CREATE POLICY "members see their own farm's water records" ON farmops.water_records
FOR SELECT TO farmops_app
USING (farm_id = (SELECT farmops.current_farm_id()));
DROP POLICY IF EXISTS "the package owner maintains every water record" ON farmops.water_records;
CREATE POLICY "the package owner maintains every water record" ON farmops.water_records
FOR ALL TO farmops_owner
USING (true) WITH CHECK (true);

ALTER TABLE farmops.weight_records ENABLE ROW LEVEL SECURITY;
ALTER TABLE farmops.weight_records FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS "members see their own farm's weight records" ON farmops.weight_records;
CREATE POLICY "members see their own farm's weight records" ON farmops.weight_records
FOR SELECT TO farmops_app
USING (farm_id = (SELECT farmops.current_farm_id()));
DROP POLICY IF EXISTS "the package owner maintains every weight record" ON farmops.weight_records;
CREATE POLICY "the package owner maintains every weight record" ON farmops.weight_records
FOR ALL TO farmops_owner
USING (true) WITH CHECK (true);

ALTER TABLE farmops.symptom_records ENABLE ROW LEVEL SECURITY;
ALTER TABLE farmops.symptom_records FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS "members see their own farm's symptom records" ON farmops.symptom_records;
CREATE POLICY "members see their own farm's symptom records" ON farmops.symptom_records
FOR SELECT TO farmops_app
USING (farm_id = (SELECT farmops.current_farm_id()));
DROP POLICY IF EXISTS "the package owner maintains every symptom record" ON farmops.symptom_records;
CREATE POLICY "the package owner maintains every symptom record" ON farmops.symptom_records
FOR ALL TO farmops_owner
USING (true) WITH CHECK (true);

ALTER TABLE farmops.note_records ENABLE ROW LEVEL SECURITY;
ALTER TABLE farmops.note_records FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS "members see their own farm's notes" ON farmops.note_records;
CREATE POLICY "members see their own farm's notes" ON farmops.note_records
FOR SELECT TO farmops_app
USING (farm_id = (SELECT farmops.current_farm_id()));
DROP POLICY IF EXISTS "the package owner maintains every note" ON farmops.note_records;
CREATE POLICY "the package owner maintains every note" ON farmops.note_records
FOR ALL TO farmops_owner
USING (true) WITH CHECK (true);

ALTER TABLE farmops.task_records ENABLE ROW LEVEL SECURITY;
ALTER TABLE farmops.task_records FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS "members see their own farm's tasks" ON farmops.task_records;
CREATE POLICY "members see their own farm's tasks" ON farmops.task_records
FOR SELECT TO farmops_app
USING (farm_id = (SELECT farmops.current_farm_id()));
DROP POLICY IF EXISTS "the package owner maintains every task" ON farmops.task_records;
CREATE POLICY "the package owner maintains every task" ON farmops.task_records
FOR ALL TO farmops_owner
USING (true) WITH CHECK (true);

ALTER TABLE farmops.ai_recommendations ENABLE ROW LEVEL SECURITY;
ALTER TABLE farmops.ai_recommendations FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS "members see their own farm's recommendations" ON farmops.ai_recommendations;
CREATE POLICY "members see their own farm's recommendations" ON farmops.ai_recommendations
FOR SELECT TO farmops_app
USING (farm_id = (SELECT farmops.current_farm_id()));
DROP POLICY IF EXISTS "the package owner maintains every recommendation" ON farmops.ai_recommendations;
CREATE POLICY "the package owner maintains every recommendation" ON farmops.ai_recommendations
FOR ALL TO farmops_owner
USING (true) WITH CHECK (true);

ALTER TABLE farmops.ai_evals ENABLE ROW LEVEL SECURITY;
ALTER TABLE farmops.ai_evals FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS "members see their own farm's eval results" ON farmops.ai_evals;
CREATE POLICY "members see their own farm's eval results" ON farmops.ai_evals
FOR SELECT TO farmops_app
USING (farm_id = (SELECT farmops.current_farm_id()));
DROP POLICY IF EXISTS "the package owner maintains every eval result" ON farmops.ai_evals;
CREATE POLICY "the package owner maintains every eval result" ON farmops.ai_evals
FOR ALL TO farmops_owner
USING (true) WITH CHECK (true);

ALTER TABLE farmops.ai_feedback ENABLE ROW LEVEL SECURITY;
ALTER TABLE farmops.ai_feedback FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS "members see their own farm's feedback entries" ON farmops.ai_feedback;
CREATE POLICY "members see their own farm's feedback entries" ON farmops.ai_feedback
FOR SELECT TO farmops_app
USING (farm_id = (SELECT farmops.current_farm_id()));
DROP POLICY IF EXISTS "the package owner maintains every feedback entry" ON farmops.ai_feedback;
CREATE POLICY "the package owner maintains every feedback entry" ON farmops.ai_feedback
FOR ALL TO farmops_owner
USING (true) WITH CHECK (true);

ALTER TABLE farmops.memories ENABLE ROW LEVEL SECURITY;
ALTER TABLE farmops.memories FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS "members see their own farm's memories" ON farmops.memories;
CREATE POLICY "members see their own farm's memories" ON farmops.memories
FOR SELECT TO farmops_app
USING (farm_id = (SELECT farmops.current_farm_id()));
DROP POLICY IF EXISTS "the package owner maintains every memory" ON farmops.memories;
CREATE POLICY "the package owner maintains every memory" ON farmops.memories
FOR ALL TO farmops_owner
USING (true) WITH CHECK (true);

GRANT SELECT ON
farmops.assistant_drafts,
farmops.autonomy_changes,
farmops.mortality_records,
farmops.feed_use_records,
farmops.sale_records,
farmops.expense_records,
farmops.water_records,
farmops.weight_records,
farmops.symptom_records,
farmops.note_records,
farmops.task_records,
farmops.ai_recommendations,
farmops.ai_evals,
farmops.ai_feedback,
farmops.memories,
farmops.record_types,
farmops.ai_eval_rules
TO farmops_app;

-- register_record_type, register_eval_rule and the private helpers are NOT granted:
-- only the package owner registers types and rules.
GRANT EXECUTE ON FUNCTION
farmops.record_type_tools(),
farmops.validate_payload(text, jsonb),
farmops.resolve_autonomy(text),
farmops.resolve_autonomy_for(text, text, text, jsonb, jsonb),
farmops.set_autonomy(text, jsonb, jsonb),
farmops.propose_write(uuid, text, jsonb),
farmops.confirm_draft(uuid, jsonb),
farmops.discard_draft(uuid, text),
farmops.expire_drafts(),
farmops.recommend(uuid, text, text),
farmops.decide_recommendation(uuid, boolean, text),
farmops.evaluate_run(uuid, text),
farmops.give_feedback(uuid, boolean, text),
farmops.remember(text, uuid),
farmops.embed_memory(uuid, vector, text),
farmops.forget(uuid)
TO farmops_app;
