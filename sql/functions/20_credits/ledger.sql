-- The credit ledger only grows, twice over: nobody holds UPDATE, DELETE or
-- TRUNCATE on it (sql/policies/090_grants.sql) and this trigger refuses the
-- change for every role, superusers and replica sessions included.

SELECT farmops._attach_append_only('farmops.credit_ledger');
