-- Row level security for farms and farm_members. Enabled AND forced, so the
-- owning role is not silently exempt; writes happen only through functions.

ALTER TABLE farmops.farms ENABLE ROW LEVEL SECURITY;
ALTER TABLE farmops.farms FORCE ROW LEVEL SECURITY;
ALTER TABLE farmops.farm_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE farmops.farm_members FORCE ROW LEVEL SECURITY;

GRANT SELECT ON farmops.farms, farmops.farm_members TO farmops_app;
GRANT EXECUTE ON FUNCTION
farmops.create_farm(text, text),
farmops.add_member(uuid, text, text),
farmops.remove_member(uuid, text)
TO farmops_app;

DROP POLICY IF EXISTS "members see their own farm" ON farmops.farms;
CREATE POLICY "members see their own farm" ON farmops.farms
FOR SELECT TO farmops_app
USING (id = (SELECT farmops.current_farm_id()));

DROP POLICY IF EXISTS "the package owner maintains every farm" ON farmops.farms;
CREATE POLICY "the package owner maintains every farm" ON farmops.farms
FOR ALL TO farmops_owner
USING (true) WITH CHECK (true);

DROP POLICY IF EXISTS "members see the members of their own farm" ON farmops.farm_members;
CREATE POLICY "members see the members of their own farm" ON farmops.farm_members
FOR SELECT TO farmops_app
USING (farm_id = (SELECT farmops.current_farm_id()));

DROP POLICY IF EXISTS "the package owner maintains every membership" ON farmops.farm_members;
CREATE POLICY "the package owner maintains every membership" ON farmops.farm_members
FOR ALL TO farmops_owner
USING (true) WITH CHECK (true);
