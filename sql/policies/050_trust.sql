-- Guards: the global rules are readable by every application session, with or
-- without a tenant context (check_text() runs in both); a farm's own rules and
-- allow rules are tenant tables. Nothing is written by the application directly:
-- the rule management functions (owners only, audited) come with the
-- capabilities restructure.

ALTER TABLE farmops.guard_rules ENABLE ROW LEVEL SECURITY;
ALTER TABLE farmops.guard_rules FORCE ROW LEVEL SECURITY;
ALTER TABLE farmops.farm_guard_rules ENABLE ROW LEVEL SECURITY;
ALTER TABLE farmops.farm_guard_rules FORCE ROW LEVEL SECURITY;
ALTER TABLE farmops.guard_allow_rules ENABLE ROW LEVEL SECURITY;
ALTER TABLE farmops.guard_allow_rules FORCE ROW LEVEL SECURITY;

GRANT SELECT ON
farmops.guard_rules,
farmops.farm_guard_rules,
farmops.guard_allow_rules
TO farmops_app;

DROP POLICY IF EXISTS "every session reads the global guard rules" ON farmops.guard_rules;
CREATE POLICY "every session reads the global guard rules" ON farmops.guard_rules
FOR SELECT TO farmops_app
USING (true);

DROP POLICY IF EXISTS "the package owner maintains the global guard rules" ON farmops.guard_rules;
CREATE POLICY "the package owner maintains the global guard rules" ON farmops.guard_rules
FOR ALL TO farmops_owner
USING (true) WITH CHECK (true);

DROP POLICY IF EXISTS "members see their own farm's guard rules" ON farmops.farm_guard_rules;
CREATE POLICY "members see their own farm's guard rules" ON farmops.farm_guard_rules
FOR SELECT TO farmops_app
USING (farm_id = (SELECT farmops.current_farm_id()));

DROP POLICY IF EXISTS "the package owner maintains every farm's guard rules" ON farmops.farm_guard_rules;
CREATE POLICY "the package owner maintains every farm's guard rules" ON farmops.farm_guard_rules
FOR ALL TO farmops_owner
USING (true) WITH CHECK (true);

DROP POLICY IF EXISTS "members see their own farm's guard allow rules" ON farmops.guard_allow_rules;
CREATE POLICY "members see their own farm's guard allow rules" ON farmops.guard_allow_rules
FOR SELECT TO farmops_app
USING (farm_id = (SELECT farmops.current_farm_id()));

DROP POLICY IF EXISTS "the package owner maintains every farm's guard allow rules" ON farmops.guard_allow_rules;
CREATE POLICY "the package owner maintains every farm's guard allow rules" ON farmops.guard_allow_rules
FOR ALL TO farmops_owner
USING (true) WITH CHECK (true);
