wrote /work/wt/server-cuts/sql/install.sql
ED by `farmops install-script`; do not edit.
-- Usage: psql -v ON_ERROR_STOP=1 -f sql/install.sql "$DATABASE_URL"
-- Same steps as `farmops migrate`: one transaction, an advisory lock, each schema
-- migration once (recorded with its sha256), then functions and policies re-applied.
\set ON_ERROR_STOP 1
BEGIN;
SELECT pg_advisory_xact_lock(hashtextextended('farmops.migrate', 0));
SET LOCAL farmops.package_version = '0.1.0';
\ir bootstrap.sql
SELECT farmops.migration_is_pending('0001_tenancy.sql', '807f01d954528d5317b594645db21b2eb8d491fb62056b3b7fe2d3ded06b4f69') AS pending \gset
\if :pending
\ir schema/0001_tenancy.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0001_tenancy.sql', '807f01d954528d5317b594645db21b2eb8d491fb62056b3b7fe2d3ded06b4f69');
\endif
SELECT EXISTS (SELECT FROM farmops.schema_migrations
WHERE filename = '0002_runs_and_ledger.sql' AND sha256 = 'c8017b0bf43b0e41aede2844de0e04872523d3cbb1fb2744f862bec5a7d783fb') AS accepted \gset
\if :accepted
\ir schema/upgrades/0002_runs_and_ledger_from_7c3a900.sql
UPDATE farmops.schema_migrations SET sha256 = '4169d5e9196580624e8be64aa246b978b794347c2a1ade59c9c785a2946abceb'
WHERE filename = '0002_runs_and_ledger.sql';
\endif
SELECT farmops.migration_is_pending('0002_runs_and_ledger.sql', '4169d5e9196580624e8be64aa246b978b794347c2a1ade59c9c785a2946abceb') AS pending \gset
\if :pending
\ir schema/0002_runs_and_ledger.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0002_runs_and_ledger.sql', '4169d5e9196580624e8be64aa246b978b794347c2a1ade59c9c785a2946abceb');
\endif
SELECT farmops.migration_is_pending('0003_model_rates.sql', 'de9bdce7927944e9a8fea494f31ae8159c7ef2871b1027adebb488b966fb11ce') AS pending \gset
\if :pending
\ir schema/0003_model_rates.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0003_model_rates.sql', 'de9bdce7927944e9a8fea494f31ae8159c7ef2871b1027adebb488b966fb11ce');
\endif
SELECT farmops.migration_is_pending('0010_record_types.sql', 'ec8b931a7edcf134eab6e3c3cc0af548d37047eeb6197783be5fc766f21c83c8') AS pending \gset
\if :pending
\ir schema/0010_record_types.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0010_record_types.sql', 'ec8b931a7edcf134eab6e3c3cc0af548d37047eeb6197783be5fc766f21c83c8');
\endif
SELECT farmops.migration_is_pending('0011_assistant_drafts.sql', '25b8f0c1be0f1dc4658a599fb427939b4d2b1a180147c3ada2a15405f611c03b') AS pending \gset
\if :pending
\ir schema/0011_assistant_drafts.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0011_assistant_drafts.sql', '25b8f0c1be0f1dc4658a599fb427939b4d2b1a180147c3ada2a15405f611c03b');
\endif
SELECT farmops.migration_is_pending('0012_autonomy_changes.sql', 'c5f4c44196251da8d8be254ec544884d633510076d6311fbb62b463828365367') AS pending \gset
\if :pending
\ir schema/0012_autonomy_changes.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0012_autonomy_changes.sql', 'c5f4c44196251da8d8be254ec544884d633510076d6311fbb62b463828365367');
\endif
SELECT farmops.migration_is_pending('0013_farm_records.sql', 'd33cc4c6b745c3bf12459f6c01e3815fbc2fce4ff485f78d802b00be17a69631') AS pending \gset
\if :pending
\ir schema/0013_farm_records.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0013_farm_records.sql', 'd33cc4c6b745c3bf12459f6c01e3815fbc2fce4ff485f78d802b00be17a69631');
\endif
SELECT farmops.migration_is_pending('0014_ai_recommendations.sql', '0828cc35158a26ec8b47c169aeb69d5c818ce01e096c9bd1afe51aa3e24fb7fb') AS pending \gset
\if :pending
\ir schema/0014_ai_recommendations.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0014_ai_recommendations.sql', '0828cc35158a26ec8b47c169aeb69d5c818ce01e096c9bd1afe51aa3e24fb7fb');
\endif
SELECT farmops.migration_is_pending('0015_ai_evals.sql', '829c5b72ed4828c74c1dbcef20b5b16d7dde965c733291a7056874a08ea07171') AS pending \gset
\if :pending
\ir schema/0015_ai_evals.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0015_ai_evals.sql', '829c5b72ed4828c74c1dbcef20b5b16d7dde965c733291a7056874a08ea07171');
\endif
SELECT farmops.migration_is_pending('0016_ai_feedback.sql', 'e9d276d351fca1e2cc9d5ad4478f4edfcda341b547cbe88b5a3cfa3602e85b2c') AS pending \gset
\if :pending
\ir schema/0016_ai_feedback.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0016_ai_feedback.sql', 'e9d276d351fca1e2cc9d5ad4478f4edfcda341b547cbe88b5a3cfa3602e85b2c');
\endif
SELECT farmops.migration_is_pending('0017_memories.sql', 'aeb41256e225e1cdeee82988c2162806d4a702d79dc47802391b98e939f0c1c4') AS pending \gset
\if :pending
\ir schema/0017_memories.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0017_memories.sql', 'aeb41256e225e1cdeee82988c2162806d4a702d79dc47802391b98e939f0c1c4');
\endif
SELECT EXISTS (SELECT FROM farmops.schema_migrations
WHERE filename = '0020_documents_and_embeddings.sql' AND sha256 = '566f69b106b32cbdc62d15fdbd2e3384fd561cb11907d28404eca9f84e7f5a59') AS accepted \gset
\if :accepted
UPDATE farmops.schema_migrations SET sha256 = 'ea3c354a57fbf2ebe9285d52bf9b8b31e31b5b888232c16fcdb42508b401e05a'
WHERE filename = '0020_documents_and_embeddings.sql';
\endif
SELECT farmops.migration_is_pending('0020_documents_and_embeddings.sql', 'ea3c354a57fbf2ebe9285d52bf9b8b31e31b5b888232c16fcdb42508b401e05a') AS pending \gset
\if :pending
\ir schema/0020_documents_and_embeddings.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0020_documents_and_embeddings.sql', 'ea3c354a57fbf2ebe9285d52bf9b8b31e31b5b888232c16fcdb42508b401e05a');
\endif
SELECT EXISTS (SELECT FROM farmops.schema_migrations
WHERE filename = '0021_global_knowledge.sql' AND sha256 = '9fea1728382f4112c223c058031e38ea5be685ba5d90c68f31943f57a4dbd156') AS accepted \gset
\if :accepted
UPDATE farmops.schema_migrations SET sha256 = '26be75ae46e13a4f44c2a42c6cec9448b5e20ed1e38eab6bf1f69dbbcf1c7df0'
WHERE filename = '0021_global_knowledge.sql';
\endif
SELECT farmops.migration_is_pending('0021_global_knowledge.sql', '26be75ae46e13a4f44c2a42c6cec9448b5e20ed1e38eab6bf1f69dbbcf1c7df0') AS pending \gset
\if :pending
\ir schema/0021_global_knowledge.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0021_global_knowledge.sql', '26be75ae46e13a4f44c2a42c6cec9448b5e20ed1e38eab6bf1f69dbbcf1c7df0');
\endif
SELECT farmops.migration_is_pending('0022_run_retrievals.sql', '7394d2a80d71184ac6337dab99836ffce774e1f4120c12eada30a618755b5109') AS pending \gset
\if :pending
\ir schema/0022_run_retrievals.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0022_run_retrievals.sql', '7394d2a80d71184ac6337dab99836ffce774e1f4120c12eada30a618755b5109');
\endif
SELECT farmops.migration_is_pending('0030_role_capabilities.sql', 'c29cd364b82236a1c04533ed5a9d8db6d97f6027869e60e4ea7a457c68876990') AS pending \gset
\if :pending
\ir schema/0030_role_capabilities.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0030_role_capabilities.sql', 'c29cd364b82236a1c04533ed5a9d8db6d97f6027869e60e4ea7a457c68876990');
\endif
SELECT farmops.migration_is_pending('0031_shared_guards_and_policies.sql', '5d5972c8d407388fe3ecc4be61680c7b5832f0223f93a4a020837d9cca2e272e') AS pending \gset
\if :pending
\ir schema/0031_shared_guards_and_policies.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0031_shared_guards_and_policies.sql', '5d5972c8d407388fe3ecc4be61680c7b5832f0223f93a4a020837d9cca2e272e');
\endif
SELECT farmops.migration_is_pending('0032_constraint_names.sql', '9cd84bcff3d72155b68509e43991742e9d263f617edd95d28fe499b4936fe3f2') AS pending \gset
\if :pending
\ir schema/0032_constraint_names.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0032_constraint_names.sql', '9cd84bcff3d72155b68509e43991742e9d263f617edd95d28fe499b4936fe3f2');
\endif
SELECT farmops.migration_is_pending('0040_package_version.sql', '36d482a0e78e267eff9875b110793b0107f9d15ba064e68aa7b91fdc656d305b') AS pending \gset
\if :pending
\ir schema/0040_package_version.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0040_package_version.sql', '36d482a0e78e267eff9875b110793b0107f9d15ba064e68aa7b91fdc656d305b');
\endif
SELECT farmops.migration_is_pending('0050_verified_identity.sql', '612eb76be82b755f8f0c337ae00b38784d6837710d15a6e5c3e1d967a82f22f4') AS pending \gset
\if :pending
\ir schema/0050_verified_identity.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0050_verified_identity.sql', '612eb76be82b755f8f0c337ae00b38784d6837710d15a6e5c3e1d967a82f22f4');
\endif
SELECT farmops.migration_is_pending('0051_tenant_indexes_lead_with_farm.sql', '550b57c9650d2b1fb30250b83210a4467214fc39a24d2ba47bf6459236ce4f9b') AS pending \gset
\if :pending
\ir schema/0051_tenant_indexes_lead_with_farm.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0051_tenant_indexes_lead_with_farm.sql', '550b57c9650d2b1fb30250b83210a4467214fc39a24d2ba47bf6459236ce4f9b');
\endif
SELECT farmops.migration_is_pending('0052_per_farm_ids.sql', 'fff168de30170382593e57b22f1c32298fdba4c854aa826e5f3c75f4279509ac') AS pending \gset
\if :pending
\ir schema/0052_per_farm_ids.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0052_per_farm_ids.sql', 'fff168de30170382593e57b22f1c32298fdba4c854aa826e5f3c75f4279509ac');
\endif
SELECT farmops.migration_is_pending('0053_farm_locks.sql', 'cc1436d583ec448c77ba7a24508ac45ddb58eb2eba5426deb05bb5d79d53a72f') AS pending \gset
\if :pending
\ir schema/0053_farm_locks.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0053_farm_locks.sql', 'cc1436d583ec448c77ba7a24508ac45ddb58eb2eba5426deb05bb5d79d53a72f');
\endif
SELECT farmops.migration_is_pending('0055_private_search_candidates.sql', '9ffa91d518c9184e13d06be29fd90ce7778f494bc1065a9a4306214387af4f18') AS pending \gset
\if :pending
\ir schema/0055_private_search_candidates.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0055_private_search_candidates.sql', '9ffa91d518c9184e13d06be29fd90ce7778f494bc1065a9a4306214387af4f18');
\endif
SELECT farmops.migration_is_pending('0056_finite_default_rate.sql', 'b781896826d0dfc2ad4e8128425ff5c46d5a8ee1c132dd8c083f3c0320e6c9ee') AS pending \gset
\if :pending
\ir schema/0056_finite_default_rate.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0056_finite_default_rate.sql', 'b781896826d0dfc2ad4e8128425ff5c46d5a8ee1c132dd8c083f3c0320e6c9ee');
\endif
SELECT farmops.migration_is_pending('0058_installation_logins.sql', '09a502e4c8dd5d6c64520a725ab90c2bc3f4ccd19e493b23ae0a5c00b14a254b') AS pending \gset
\if :pending
\ir schema/0058_installation_logins.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0058_installation_logins.sql', '09a502e4c8dd5d6c64520a725ab90c2bc3f4ccd19e493b23ae0a5c00b14a254b');
\endif
SELECT farmops.migration_is_pending('0060_fast_path_reserve.sql', '376a9d515b55a04c8e3cced9334990fd9e47cc162d019f8c7939e8ed7c871f47') AS pending \gset
\if :pending
\ir schema/0060_fast_path_reserve.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0060_fast_path_reserve.sql', '376a9d515b55a04c8e3cced9334990fd9e47cc162d019f8c7939e8ed7c871f47');
\endif
SELECT farmops.migration_is_pending('0065_search_farms_exactly.sql', '7112f0159753776980acaf42e1b5b52a928f42229596b9cdf3d80363a4a5473f') AS pending \gset
\if :pending
\ir schema/0065_search_farms_exactly.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0065_search_farms_exactly.sql', '7112f0159753776980acaf42e1b5b52a928f42229596b9cdf3d80363a4a5473f');
\endif
SELECT farmops.migration_is_pending('0075_guard_rules.sql', '5107629c946c6bac430ffd959df4b90a7cb2a704995c8b7b457e1dba55eabb2f') AS pending \gset
\if :pending
\ir schema/0075_guard_rules.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0075_guard_rules.sql', '5107629c946c6bac430ffd959df4b90a7cb2a704995c8b7b457e1dba55eabb2f');
\endif
SELECT farmops.migration_is_pending('0076_trust_pii_policy_and_guard_events.sql', '909ea255b9934dc6ad356c4ae3d14acbd75cbfab6f77d8ae7a35a5da05b9975a') AS pending \gset
\if :pending
\ir schema/0076_trust_pii_policy_and_guard_events.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0076_trust_pii_policy_and_guard_events.sql', '909ea255b9934dc6ad356c4ae3d14acbd75cbfab6f77d8ae7a35a5da05b9975a');
\endif
SELECT farmops.migration_is_pending('0080_trust_audit_log.sql', 'a5535f03742ea1a5d9fa15f7ccdacdf6668313dd44c2ad1eb2e90334d64aed36') AS pending \gset
\if :pending
\ir schema/0080_trust_audit_log.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0080_trust_audit_log.sql', 'a5535f03742ea1a5d9fa15f7ccdacdf6668313dd44c2ad1eb2e90334d64aed36');
\endif
SELECT farmops.migration_is_pending('0090_control_policies_and_rate_limits.sql', 'b45895ca4031f296d86e3b946740dd75009822de098c608e85803efc2ca25e34') AS pending \gset
\if :pending
\ir schema/0090_control_policies_and_rate_limits.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0090_control_policies_and_rate_limits.sql', 'b45895ca4031f296d86e3b946740dd75009822de098c608e85803efc2ca25e34');
\endif
SELECT farmops.migration_is_pending('0095_money_cost_and_budgets.sql', '28049fa5cbaabc46f7228a6e145c51da2358b2fb10169edb9b0109bdf19964e0') AS pending \gset
\if :pending
\ir schema/0095_money_cost_and_budgets.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0095_money_cost_and_budgets.sql', '28049fa5cbaabc46f7228a6e145c51da2358b2fb10169edb9b0109bdf19964e0');
\endif
SELECT farmops.migration_is_pending('0100_observability_steps_and_counters.sql', '5002b4dc46231499c0b7abe2319c83901f4aa514585712fca620c5418d40d463') AS pending \gset
\if :pending
\ir schema/0100_observability_steps_and_counters.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0100_observability_steps_and_counters.sql', '5002b4dc46231499c0b7abe2319c83901f4aa514585712fca620c5418d40d463');
\endif
SELECT farmops.migration_is_pending('0110_credits_extend_reservation.sql', 'fa58ee22dd0c46e11ad0e46cc30e19c6a8428f21167e6010dfa8865977a09cc1') AS pending \gset
\if :pending
\ir schema/0110_credits_extend_reservation.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0110_credits_extend_reservation.sql', 'fa58ee22dd0c46e11ad0e46cc30e19c6a8428f21167e6010dfa8865977a09cc1');
\endif
SELECT farmops.migration_is_pending('0115_write_path_draft_ttl.sql', 'c4b03c785c59ed4a9e9a75e3ea778cd3b0b2ed6ec89ca64530e5eb29aaf3b2f6') AS pending \gset
\if :pending
\ir schema/0115_write_path_draft_ttl.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0115_write_path_draft_ttl.sql', 'c4b03c785c59ed4a9e9a75e3ea778cd3b0b2ed6ec89ca64530e5eb29aaf3b2f6');
\endif
SELECT farmops.migration_is_pending('0120_knowledge_search_without_farm_helper.sql', '4007cc8cbee3fc9d64ae854427785c63c22a82d0b431b76249877619026db41a') AS pending \gset
\if :pending
\ir schema/0120_knowledge_search_without_farm_helper.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0120_knowledge_search_without_farm_helper.sql', '4007cc8cbee3fc9d64ae854427785c63c22a82d0b431b76249877619026db41a');
\endif
SELECT farmops.migration_is_pending('0135_trust_audit_log_without_farm_key_share.sql', 'c66f750db00b997623a6464a90fdfaa1a42460ebdc8cc157e403bf8102547bfe') AS pending \gset
\if :pending
\ir schema/0135_trust_audit_log_without_farm_key_share.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0135_trust_audit_log_without_farm_key_share.sql', 'c66f750db00b997623a6464a90fdfaa1a42460ebdc8cc157e403bf8102547bfe');
\endif
SELECT farmops.migration_is_pending('0136_trust_pii_keep_kinds_with_mask_rules.sql', '4c72b7fe674ebcf1b52be51c269f9de673bd1869f72552392ff24069aace4f88') AS pending \gset
\if :pending
\ir schema/0136_trust_pii_keep_kinds_with_mask_rules.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0136_trust_pii_keep_kinds_with_mask_rules.sql', '4c72b7fe674ebcf1b52be51c269f9de673bd1869f72552392ff24069aace4f88');
\endif
SELECT farmops.migration_is_pending('0140_control_rate_limit_refusal_counters.sql', '4c1626bed48dc8bee9e7b07bfea856601e59698a041048d85532a4af5df89776') AS pending \gset
\if :pending
\ir schema/0140_control_rate_limit_refusal_counters.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0140_control_rate_limit_refusal_counters.sql', '4c1626bed48dc8bee9e7b07bfea856601e59698a041048d85532a4af5df89776');
\endif
SELECT farmops.migration_is_pending('0141_knowledge_global_index_denser_graph.sql', '58260873324642fc4963504ba4e68bc60cd5257f46297daaf75ef0b96ed4583b') AS pending \gset
\if :pending
\ir schema/0141_knowledge_global_index_denser_graph.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0141_knowledge_global_index_denser_graph.sql', '58260873324642fc4963504ba4e68bc60cd5257f46297daaf75ef0b96ed4583b');
\endif
SELECT farmops.migration_is_pending('0155_trust_guard_rule_keywords.sql', '45dff260b4dc98b85dfb408d944ee780a4002b0f301a66833f471ed7309e4821') AS pending \gset
\if :pending
\ir schema/0155_trust_guard_rule_keywords.sql
INSERT INTO farmops.schema_migrations (filename, sha256)
VALUES ('0155_trust_guard_rule_keywords.sql', '45dff260b4dc98b85dfb408d944ee780a4002b0f301a66833f471ed7309e4821');
\endif
\ir functions/00_core/arguments.sql
\ir functions/00_core/errors.sql
\ir functions/00_core/guards.sql
\ir functions/00_core/package_version.sql
\ir functions/00_core/secure_tenant_table.sql
\ir functions/10_tenancy/capabilities.sql
\ir functions/10_tenancy/context.sql
\ir functions/10_tenancy/farm_locks.sql
\ir functions/10_tenancy/logins.sql
\ir functions/10_tenancy/members.sql
\ir functions/10_tenancy/verified_identity.sql
\ir functions/20_credits/expire.sql
\ir functions/20_credits/extend.sql
\ir functions/20_credits/extend_ahead.sql
\ir functions/20_credits/grant.sql
\ir functions/20_credits/invariants.sql
\ir functions/20_credits/ledger.sql
\ir functions/20_credits/model_rates.sql
\ir functions/20_credits/reserve.sql
\ir functions/20_credits/runs.sql
\ir functions/20_credits/settle.sql
\ir functions/30_write_path/autonomy.sql
\ir functions/30_write_path/draft_notify.sql
\ir functions/30_write_path/draft_ttl.sql
\ir functions/30_write_path/drafts.sql
\ir functions/30_write_path/evals.sql
\ir functions/30_write_path/feedback.sql
\ir functions/30_write_path/memories.sql
\ir functions/30_write_path/payload.sql
\ir functions/30_write_path/recommendations.sql
\ir functions/30_write_path/record_types.sql
\ir functions/40_knowledge/documents.sql
\ir functions/40_knowledge/global_base.sql
\ir functions/40_knowledge/lineage.sql
\ir functions/40_knowledge/search.sql
\ir functions/40_knowledge/settings.sql
\ir functions/40_knowledge/vectors.sql
\ir functions/50_trust/audit_1_write.sql
\ir functions/50_trust/audit_2_seal.sql
\ir functions/50_trust/audit_3_verify.sql
\ir functions/50_trust/erasure.sql
\ir functions/50_trust/guard_management.sql
\ir functions/50_trust/guard_prefilter.sql
\ir functions/50_trust/guard_rules_shipped_1_injection.sql
\ir functions/50_trust/guard_rules_shipped_2_other.sql
\ir functions/50_trust/guards.sql
\ir functions/50_trust/pii.sql
\ir functions/50_trust/pii_keep_kinds.sql
\ir functions/50_trust/pii_policy.sql
\ir functions/50_trust/screened_run.sql
\ir functions/50_trust/screening.sql
\ir functions/50_trust/stream_screening.sql
\ir functions/60_control/approvals.sql
\ir functions/60_control/budgets.sql
\ir functions/60_control/cost.sql
\ir functions/60_control/policies.sql
\ir functions/60_control/policies_manage.sql
\ir functions/60_control/rate_limit_refusals.sql
\ir functions/60_control/rate_limits.sql
\ir functions/60_control/spend_views.sql
\ir functions/60_control/statement.sql
\ir functions/70_observability/check_tenancy.sql
\ir functions/70_observability/metrics.sql
\ir functions/70_observability/metrics_trust_and_spend.sql
\ir functions/70_observability/run_lineage.sql
\ir functions/70_observability/run_steps.sql
\ir policies/000_revoke_by_default.sql
\ir policies/010_row_level_security.sql
\ir policies/050_observability.sql
\ir policies/090_grants.sql
COMMIT;
