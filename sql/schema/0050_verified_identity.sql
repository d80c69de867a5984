-- Verified identity (optional): the keys of the product's auth service that sign
-- the HS256 tokens farmops.begin_tenant_verified() accepts, and the installation
-- setting that makes such a token the only way for the application in.
--
-- Both tables are private: revoked from the application role by
-- sql/policies/000_revoke_by_default.sql, and RLS is forced with a policy for the
-- package owner only, so a stray GRANT still shows the application zero rows.

CREATE TABLE farmops.identity_keys (
    kid text NOT NULL,
    secret bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    not_after timestamptz,
    CONSTRAINT identity_key_ids_are_unique PRIMARY KEY (kid),
    CONSTRAINT identity_key_id_is_short_and_printable
    CHECK (char_length(kid) BETWEEN 1 AND 128 AND kid !~ '[[:cntrl:]]'),
    CONSTRAINT identity_key_secret_has_32_to_1024_bytes
    CHECK (octet_length(secret) BETWEEN 32 AND 1024)
);
COMMENT ON TABLE farmops.identity_keys IS
'Private: HMAC keys of the product''s auth service (one per kid, several during a rotation). '
'Readable by the package owner only; set with farmops.set_identity_key().';
COMMENT ON COLUMN farmops.identity_keys.kid IS 'Key id: the "kid" header of the tokens this key signs.';
COMMENT ON COLUMN farmops.identity_keys.secret IS 'The shared HS256 secret (32 bytes or more).';
COMMENT ON COLUMN farmops.identity_keys.not_after IS
'If set, the key verifies no token after this time (the end of a rotation).';

ALTER TABLE farmops.identity_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE farmops.identity_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY "only the package owner reads or writes identity keys" ON farmops.identity_keys
FOR ALL TO farmops_owner
USING (true) WITH CHECK (true);

CREATE TABLE farmops.identity_settings (
    singleton boolean NOT NULL DEFAULT true,
    verified_identity_required boolean NOT NULL DEFAULT false,
    CONSTRAINT identity_settings_have_one_row PRIMARY KEY (singleton),
    CONSTRAINT identity_settings_row_is_the_singleton CHECK (singleton)
);
COMMENT ON TABLE farmops.identity_settings IS
'Private: one row of installation settings for verified identity; set with farmops.require_verified_identity().';
COMMENT ON COLUMN farmops.identity_settings.verified_identity_required IS
'If true, farmops.begin_tenant() is refused (OF024) for every session whose login cannot act as the package '
'owner: the application must use farmops.begin_tenant_verified().';
INSERT INTO farmops.identity_settings DEFAULT VALUES;

ALTER TABLE farmops.identity_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE farmops.identity_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY "only the package owner reads or writes identity settings" ON farmops.identity_settings
FOR ALL TO farmops_owner
USING (true) WITH CHECK (true);
