-- The one table of farmops SQLSTATEs. Every RAISE in sql/ uses a code listed
-- here, and farmops_client.errors maps each one to a typed exception (tests
-- check both directions, and that every listed code is raised in sql/).
-- Class OF: PostgreSQL reserves classes 0-4 and A-H, and psycopg maps
-- unknown F/H/P/X classes to unrelated exception types.
CREATE OR REPLACE FUNCTION farmops.error_codes()
RETURNS TABLE (sqlstate text, name text, meaning text)
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
    VALUES
    -- tenancy and authorisation
    ('OF001', 'tenant_context_missing', 'No tenant context: call farmops.begin_tenant() in this transaction first.'),
    ('OF002', 'not_a_member', 'The user is not a member of the farm (or the farm does not exist).'),
    ('OF003', 'forbidden_for_role', 'The member''s role may not do this (e.g. viewer writing, agent approving).'),
    (
        'OF004', 'login_not_allowed_here',
        'The login is not one of this installation''s (farmops.app_logins): roles are cluster-wide, and a '
        'login of another farmops database in the cluster may not act here.'
    ),
    ('OF005', 'last_owner', 'The last owner of a farm cannot be removed or demoted.'),
    ('OF006', 'invalid_argument', 'An argument is NULL, out of range or malformed.'),
    (
        'OF007', 'holdable_cursor_open',
        'The session holds a WITH HOLD cursor, which outlives transactions: close it (or DISCARD ALL) before '
        'entering a tenant context.'
    ),
    -- verified identity (begin_tenant_verified)
    ('OF021', 'identity_token_invalid', 'The identity token is malformed, not HS256, or its signature does not verify.'),
    ('OF022', 'identity_token_expired', 'The identity token''s exp has passed (beyond the 30 s leeway).'),
    ('OF023', 'identity_token_not_yet_valid', 'The identity token''s nbf or iat is in the future (beyond the leeway).'),
    ('OF024', 'verified_identity_required', 'The installation requires farmops.begin_tenant_verified(token).'),
    -- credits and runs
    ('OF101', 'insufficient_credits', 'Not enough credits left to reserve; nothing was written.'),
    ('OF102', 'run_not_found', 'No such AI run in the current farm.'),
    ('OF103', 'invalid_transition', 'The state machine does not allow this transition (terminal states are final).'),
    ('OF104', 'run_already_settled', 'The run was already settled with different values.'),
    ('OF105', 'run_expired', 'The run''s reservation expired and was refunded; it can no longer be used.'),
    ('OF106', 'idempotency_conflict', 'The idempotency key was used before with a different request.'),
    ('OF107', 'append_only', 'This table is append-only: rows are never updated or deleted.'),
    ('OF108', 'unknown_model', 'No rate is configured for the model and no default rate exists.'),
    -- the AI write path
    ('OF201', 'suggest_only', 'The farm''s autonomy for this record type is suggest: the AI may not write it.'),
    ('OF202', 'invalid_payload', 'The payload does not match its record type (keys, types or ranges).'),
    ('OF203', 'unknown_record_type', 'No such record type is registered.'),
    ('OF204', 'draft_not_found', 'No such draft in the current farm.'),
    ('OF205', 'run_not_live', 'The run is settled or expired: it can no longer propose writes or retrieve.'),
    ('OF206', 'memory_not_found', 'No such memory in the current farm.'),
    ('OF207', 'recommendation_not_found', 'No such recommendation in the current farm.'),
    -- knowledge (documents, vectors, search)
    ('OF301', 'dimension_mismatch', 'The vector does not have the configured embedding dimension.'),
    ('OF302', 'document_not_found', 'No such document in the current farm.'),
    (
        'OF303', 'embedding_model_mismatch',
        'The vectors come from another embedding model than those already in the farm''s index or the '
        'global knowledge base: vectors of two models are not comparable.'
    ),
    -- trust (PII, guards)
    (
        'OF304', 'pii_not_redacted',
        'Text to be embedded (a chunk, a memory) holds personal data the farm does not keep: redact it '
        '(farmops.redact_pii_for_farm) before embedding.'
    ),
    ('OF305', 'unknown_pii_kind', 'Not a PII kind farmops knows (farmops.pii_kinds()).'),
    (
        'OF306', 'invalid_guard_pattern',
        'The guard pattern is not a usable PostgreSQL regular expression (no back references or embedded options).'
    ),
    ('OF307', 'guard_rule_not_found', 'No such guard rule, category or allow rule in the current farm.'),
    -- trust: audit and erasure
    ('OF310', 'erasure_blocked_by_live_runs', 'The person (or farm) still has runs in progress; erase after they settle or expire.'),
    (
        'OF311', 'erasure_blocked_by_product_table',
        'A product record table does not let farmops pseudonymise a person column (farmops_owner lacks USAGE, '
        'SELECT or UPDATE on it, the column cannot hold erased:<uuid>, or its own trigger, constraint or policy '
        'refused): nothing was erased; the product grants what README "Erasure" lists.'
    ),
    -- spend control (policies, rate limits)
    (
        'OF401', 'policy_denied',
        'A policy rule denies the request; DETAIL names the rule (rule=<name> source=<farm|package>).'
    ),
    (
        'OF402', 'rate_limited',
        'A farm or member rate limit refuses the request now; DETAIL holds retry_after=<seconds>.'
    ),
    (
        'OF403', 'run_awaits_approval',
        'A policy holds the run for approval: an owner or manager must approve it before it starts.'
    ),
    ('OF404', 'policy_not_found', 'No such policy rule.'),
    (
        'OF405', 'over_rate_limit_capacity',
        'One request needs more tokens than the per-minute token limit allows: it can never pass.'
    ),
    -- money cost and budgets
    ('OF410', 'model_not_priced', 'The model has no price and no default price (''*'') is set: it fails closed.'),
    ('OF411', 'budget_exceeded', 'The reservation would take a money budget''s spent + held above its limit (deny).'),
    (
        'OF413', 'money_bound_unknown',
        'A budget applies but the reservation cannot be bounded in money: a priced token kind costs no credits.'
    ),
    ('OF414', 'balance_would_go_negative', 'The credit adjustment would make the balance negative.'),
    ('OF415', 'budget_not_found', 'No such money budget in the current farm.'),
    -- observability (run steps, replay)
    (
        'OF501', 'run_in_progress',
        'The request id names a run that is still being driven: ask again once it has settled to get its result.'
    ),
    -- installation
    ('OF900', 'pgvector_missing', 'The server does not have the pgvector extension installed.'),
    ('OF901', 'migration_changed', 'An applied schema migration file was edited afterwards.'),
    ('OF902', 'untrusted_schema', 'Schema farmops exists but is not owned by farmops_owner; install refused.')
$fn$;
COMMENT ON FUNCTION farmops.error_codes() IS
'The documented farmops SQLSTATEs (class OF): code, stable name, meaning.';
