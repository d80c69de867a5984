-- squawk-ignore-file renaming-object
-- (why: naming constraints is this file's purpose; the package's own code changes in
-- the same release and no client depends on generated names.)
-- Constraints that can surface in an error are named as the sentence they
-- enforce, instead of ai_runs_check2 (and no code depends on a generated name).

ALTER TABLE farmops.farms RENAME CONSTRAINT farms_credit_balance_check TO credit_balance_is_never_negative;

ALTER TABLE farmops.ai_runs RENAME CONSTRAINT ai_runs_farm_id_request_id_key TO one_run_per_request_id;
ALTER TABLE farmops.ai_runs RENAME CONSTRAINT ai_runs_check TO settled_runs_have_settled_at;
ALTER TABLE farmops.ai_runs RENAME CONSTRAINT ai_runs_check1 TO settled_runs_know_their_cost;
ALTER TABLE farmops.ai_runs RENAME CONSTRAINT ai_runs_check2 TO shortfall_is_within_the_cost;
ALTER TABLE farmops.ai_runs RENAME CONSTRAINT ai_runs_check3 TO runs_expire_after_their_reservation;

ALTER TABLE farmops.credit_ledger RENAME CONSTRAINT credit_ledger_balance_after_check
TO ledger_balance_is_never_negative;
ALTER TABLE farmops.credit_ledger RENAME CONSTRAINT credit_ledger_check TO each_ledger_kind_moves_one_way;
ALTER TABLE farmops.credit_ledger RENAME CONSTRAINT credit_ledger_check1 TO only_run_legs_name_a_run;
ALTER INDEX farmops.credit_ledger_one_leg_per_run_idx RENAME TO one_reserve_and_one_closing_leg_per_run;

ALTER TABLE farmops.assistant_drafts RENAME CONSTRAINT assistant_drafts_check TO drafts_expire_after_creation;
ALTER TABLE farmops.assistant_drafts RENAME CONSTRAINT assistant_drafts_check1
TO applied_drafts_and_only_they_have_a_record;
ALTER TABLE farmops.assistant_drafts RENAME CONSTRAINT assistant_drafts_check2 TO decided_drafts_say_when;
ALTER TABLE farmops.assistant_drafts RENAME CONSTRAINT assistant_drafts_check3 TO human_decisions_say_who;
ALTER TABLE farmops.assistant_drafts RENAME CONSTRAINT assistant_drafts_check4 TO only_confirmed_drafts_have_edits;

ALTER TABLE farmops.ai_recommendations RENAME CONSTRAINT ai_recommendations_check
TO decided_recommendations_say_when;
ALTER TABLE farmops.ai_recommendations RENAME CONSTRAINT ai_recommendations_check1
TO decided_recommendations_say_who;

ALTER TABLE farmops.ai_eval_rules RENAME CONSTRAINT ai_eval_rules_check TO regex_rules_and_only_they_have_a_pattern;

ALTER TABLE farmops.memories RENAME CONSTRAINT memories_farm_id_content_key_key TO one_memory_per_fact;

ALTER TABLE farmops.documents RENAME CONSTRAINT documents_farm_id_content_hash_key TO one_document_per_content;

ALTER TABLE farmops.embeddings RENAME CONSTRAINT embeddings_check TO document_chunks_and_only_they_name_a_document;
ALTER TABLE farmops.embeddings RENAME CONSTRAINT embeddings_check1 TO a_document_chunk_is_its_source;

ALTER TABLE farmops.ai_run_retrievals RENAME CONSTRAINT ai_run_retrievals_check TO global_hits_name_no_farm_chunk;
ALTER TABLE farmops.ai_run_retrievals RENAME CONSTRAINT ai_run_retrievals_check1 TO farm_hits_name_no_global_chunk;
