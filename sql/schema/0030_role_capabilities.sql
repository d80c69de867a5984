-- Who may do what, as data: each member role holds a set of capabilities, and
-- every function asks farmops.require_capability() instead of listing roles.
-- The rows reproduce the role arrays the functions held before this table.
-- This is the seam a policy engine plugs into (README: capability matrix).

CREATE TABLE farmops.role_capabilities (
    role text NOT NULL CHECK (role IN ('owner', 'manager', 'worker', 'viewer', 'agent')),
    capability text NOT NULL CHECK (capability ~ '^[a-z][a-z_]{0,62}$'),
    PRIMARY KEY (role, capability)
);
COMMENT ON TABLE farmops.role_capabilities IS
'Global: which member role holds which capability; read by farmops.require_capability().';

INSERT INTO farmops.role_capabilities (role, capability)
SELECT
    r.role,
    c.capability
FROM (
    VALUES
    -- any member: read the farm's rows, search, resolve autonomy, check invariants
    ('read', ARRAY['owner', 'manager', 'worker', 'viewer', 'agent']),
    -- reserve, start and settle runs; propose writes, recommend, evaluate, search for a run
    ('run_ai', ARRAY['owner', 'manager', 'worker', 'agent']),
    -- remember durable facts and index them
    ('remember', ARRAY['owner', 'manager', 'worker', 'agent']),
    -- start or settle a run another member reserved
    ('drive_others_runs', ARRAY['owner', 'manager']),
    -- confirm or discard drafts; decide recommendations; give feedback (humans only)
    ('confirm_drafts', ARRAY['owner', 'manager', 'worker']),
    ('decide_recommendations', ARRAY['owner', 'manager', 'worker']),
    ('give_feedback', ARRAY['owner', 'manager', 'worker']),
    -- write and delete the farm's documents and conversation summaries
    ('ingest', ARRAY['owner', 'manager', 'worker']),
    ('forget_memories', ARRAY['owner', 'manager']),
    ('manage_members', ARRAY['owner']),
    ('grant_credits', ARRAY['owner']),
    ('set_autonomy', ARRAY['owner'])
) AS c (capability, roles)
CROSS JOIN LATERAL unnest(c.roles) AS r (role);
