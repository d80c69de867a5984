-- check_text's keyword prefilter (sql/functions/50_trust/guard_prefilter.sql): every guard
-- rule carries the literal strings of which each match of its pattern holds one, derived
-- from the pattern by a trigger on every write. Text holding none of a stage's keywords
-- cannot match any of its rules, and is allowed without running the rules' regexes.
ALTER TABLE farmops.guard_rules ADD COLUMN keywords text[], ADD COLUMN also_keywords text[];
ALTER TABLE farmops.farm_guard_rules ADD COLUMN keywords text[], ADD COLUMN also_keywords text[];
COMMENT ON COLUMN farmops.guard_rules.keywords IS
'Derived from pattern by a trigger (never the writer): each match of the pattern holds one of these strings; '
'NULL: the rule always runs. check_text''s prefilter.';
COMMENT ON COLUMN farmops.farm_guard_rules.keywords IS
'Derived from pattern by a trigger (never the writer): each match of the pattern holds one of these strings; '
'NULL: the rule always runs (also for rules written before migration 0155, until written again).';
COMMENT ON COLUMN farmops.guard_rules.also_keywords IS
'Derived with keywords: a second set from another part of the pattern (each match holds one of keywords AND one '
'of these); NULL: none.';
COMMENT ON COLUMN farmops.farm_guard_rules.also_keywords IS
'Derived with keywords: a second set from another part of the pattern (each match holds one of keywords AND one '
'of these); NULL: none.';
