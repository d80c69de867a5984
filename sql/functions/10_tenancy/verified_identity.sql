-- Verified identity (optional): farmops.begin_tenant_verified(token) opens the
-- tenant context only for the farm and user an HS256 JSON Web Token names, signed
-- by the product's auth service with a key the DBA installed (table
-- farmops.identity_keys, readable by the package owner only). Without it any
-- application login may name any member in begin_tenant(); an installation can
-- require the token (farmops.require_verified_identity(true)).
--
-- HMAC-SHA256 is built here on the core sha256(): the servers farmops targets may
-- lack pgcrypto (no OpenSSL).

CREATE OR REPLACE FUNCTION farmops._hmac_sha256(p_key bytea, p_message bytea)
RETURNS bytea
LANGUAGE plpgsql
IMMUTABLE
STRICT
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_key bytea := p_key;
    v_inner bytea;
    v_outer bytea;
BEGIN
    -- RFC 2104 with SHA-256's 64-byte block: a longer key is hashed first, and
    -- every key is zero-padded to the block before the ipad/opad XOR.
    IF octet_length(v_key) > 64 THEN
        v_key := sha256(v_key);
    END IF;
    v_key := v_key || decode(repeat('00', 64 - octet_length(v_key)), 'hex');
    v_inner := v_key;
    v_outer := v_key;
    FOR i IN 0..63 LOOP
        v_inner := set_byte(v_inner, i, get_byte(v_key, i) # 54);  -- ipad 0x36
        v_outer := set_byte(v_outer, i, get_byte(v_key, i) # 92);  -- opad 0x5c
    END LOOP;
    RETURN sha256(v_outer || sha256(v_inner || p_message));
END
$fn$;
COMMENT ON FUNCTION farmops._hmac_sha256(bytea, bytea) IS
'Private: HMAC-SHA256 (RFC 2104) of p_message under p_key, on the core sha256().';

CREATE OR REPLACE FUNCTION farmops._base64url_encode(p_data bytea)
RETURNS text
LANGUAGE sql
IMMUTABLE
STRICT
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
    -- encode() wraps lines every 76 characters: drop the newlines with the padding.
    SELECT translate(encode(p_data, 'base64'), E'+/=\n', '-_')
$fn$;
COMMENT ON FUNCTION farmops._base64url_encode(bytea) IS
'Private: base64url (RFC 4648 section 5) without padding, as JWS uses it.';

CREATE OR REPLACE FUNCTION farmops._base64url_decode(p_text text)
RETURNS bytea
LANGUAGE plpgsql
IMMUTABLE
STRICT
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_data bytea;
BEGIN
    -- Unpadded base64url only (a length of 4n+1 never encodes whole bytes).
    IF p_text !~ '^[A-Za-z0-9_-]*$' OR char_length(p_text) % 4 = 1 THEN
        RETURN NULL;
    END IF;
    v_data := decode(translate(p_text, '-_', '+/') || repeat('=', (4 - char_length(p_text) % 4) % 4), 'base64');
    -- Canonical spelling only (unused trailing bits zero), so one token has one spelling.
    IF farmops._base64url_encode(v_data) IS DISTINCT FROM p_text THEN
        RETURN NULL;
    END IF;
    RETURN v_data;
END
$fn$;
COMMENT ON FUNCTION farmops._base64url_decode(text) IS
'Private: the bytes of canonical, unpadded base64url text, or NULL if the text is not that.';

CREATE OR REPLACE FUNCTION farmops._jose_object(p_part text)
RETURNS jsonb
LANGUAGE plpgsql
IMMUTABLE
STRICT
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_json jsonb;
BEGIN
    v_json := convert_from(farmops._base64url_decode(p_part), 'UTF8')::jsonb;
    RETURN CASE WHEN jsonb_typeof(v_json) = 'object' THEN v_json END;
EXCEPTION
    -- Invalid UTF-8, invalid JSON, \u0000, absurd nesting: not a JOSE object.
    WHEN data_exception OR program_limit_exceeded THEN
        RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION farmops._jose_object(text) IS
'Private: a base64url part of a compact JWS decoded as a JSON object, or NULL if it is not one.';

CREATE OR REPLACE FUNCTION farmops._assert_unverified_identity_allowed()
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- Fails closed: a missing settings row counts as "required". The package owner
    -- (its members, superusers) keeps begin_tenant for maintenance: it can read the
    -- keys anyway. The owner is the schema's owner, whatever the role is called.
    IF (SELECT s.verified_identity_required FROM farmops.identity_settings AS s) IS NOT FALSE
        AND NOT pg_has_role(
            session_user,
            (SELECT n.nspowner FROM pg_catalog.pg_namespace AS n WHERE n.nspname = 'farmops'),
            'USAGE'
        ) THEN
        RAISE EXCEPTION 'this installation requires a verified identity: call farmops.begin_tenant_verified(token)'
            USING ERRCODE = 'OF024';
    END IF;
END
$fn$;
COMMENT ON FUNCTION farmops._assert_unverified_identity_allowed() IS
'Private: raises OF024 when the installation requires verified identity and the login is not the package owner.';

CREATE OR REPLACE FUNCTION farmops.begin_tenant_verified(p_token text)
RETURNS text
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    -- Clock skew allowed between the auth service and the database, in seconds.
    c_leeway CONSTANT numeric := 30;
    v_now numeric := extract(EPOCH FROM clock_timestamp());
    v_parts text[];
    v_header jsonb;
    v_signature bytea;
    v_key bytea;
    v_claims jsonb;
BEGIN
    -- 0. The login: first, so another installation's login learns nothing about tokens here.
    PERFORM farmops._assert_login_allowed();
    -- 1. Shape: three unpadded base64url parts, a bounded length, a JSON header.
    IF p_token IS NULL OR octet_length(p_token) > 8192
        OR p_token !~ '^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$' THEN
        RAISE EXCEPTION 'identity token is not a compact JWS (three base64url parts, at most 8192 bytes)'
            USING ERRCODE = 'OF021';
    END IF;
    v_parts := string_to_array(p_token, '.');
    v_header := farmops._jose_object(v_parts[1]);
    v_signature := farmops._base64url_decode(v_parts[3]);
    IF v_header IS NULL OR v_signature IS NULL THEN
        RAISE EXCEPTION 'identity token is malformed' USING ERRCODE = 'OF021';
    END IF;

    -- 2. Header: HS256 only (never "none", never another algorithm the caller picks),
    -- no critical extensions we do not implement, typ JWT if present.
    IF v_header -> 'alg' IS DISTINCT FROM '"HS256"'::jsonb
        OR v_header ? 'crit'
        OR (v_header ? 'typ' AND (jsonb_typeof(v_header -> 'typ') <> 'string'
            OR upper(v_header ->> 'typ') NOT IN ('JWT', 'APPLICATION/JWT')))
        OR (v_header ? 'kid' AND jsonb_typeof(v_header -> 'kid') <> 'string') THEN
        RAISE EXCEPTION 'identity token header is not accepted: farmops verifies alg HS256 only'
            USING ERRCODE = 'OF021';
    END IF;

    -- 3. The key: the one named by kid, or the only one when there is no kid. An
    -- unknown kid fails exactly like a wrong signature, so key ids cannot be probed.
    SELECT (array_agg(k.secret))[1] INTO v_key
    FROM farmops.identity_keys AS k
    WHERE (k.not_after IS NULL OR k.not_after > clock_timestamp())
        AND (NOT v_header ? 'kid' OR k.kid = v_header ->> 'kid')
    HAVING count(*) = 1;

    -- 4. The signature over the ASCII of "header.payload"; full digests compared.
    -- Without a key the HMAC is still computed (under a dummy key), so the time
    -- taken does not tell an unknown kid from a bad signature either.
    IF farmops._hmac_sha256(coalesce(v_key, '\x00'::bytea), convert_to(v_parts[1] || '.' || v_parts[2], 'UTF8'))
        IS DISTINCT FROM v_signature
        OR v_key IS NULL THEN
        RAISE EXCEPTION 'identity token signature does not verify' USING ERRCODE = 'OF021';
    END IF;

    -- 5. Claims, read only once the signature holds: farm_id (uuid), sub (user id),
    -- exp (required), nbf and iat (when present). Times are NumericDate seconds.
    v_claims := farmops._jose_object(v_parts[2]);
    IF v_claims IS NULL
        OR jsonb_typeof(v_claims -> 'sub') IS DISTINCT FROM 'string'
        OR jsonb_typeof(v_claims -> 'farm_id') IS DISTINCT FROM 'string'
        OR NOT pg_input_is_valid(v_claims ->> 'farm_id', 'uuid')
        OR jsonb_typeof(v_claims -> 'exp') IS DISTINCT FROM 'number'
        OR jsonb_typeof(coalesce(v_claims -> 'nbf', '0')) <> 'number'
        OR jsonb_typeof(coalesce(v_claims -> 'iat', '0')) <> 'number' THEN
        RAISE EXCEPTION 'identity token claims are incomplete'
            USING ERRCODE = 'OF021',
            DETAIL = 'Needs farm_id (a uuid string), sub (a string) and exp; nbf and iat must be numbers if present.';
    END IF;
    IF (v_claims -> 'exp')::numeric + c_leeway <= v_now THEN
        RAISE EXCEPTION 'identity token has expired' USING ERRCODE = 'OF022';
    END IF;
    IF (v_claims -> 'nbf')::numeric - c_leeway > v_now OR (v_claims -> 'iat')::numeric - c_leeway > v_now THEN
        RAISE EXCEPTION 'identity token is not valid yet (nbf or iat in the future)' USING ERRCODE = 'OF023';
    END IF;

    -- 6. Exactly what begin_tenant does from here: membership, signed context.
    RETURN farmops._enter_tenant((v_claims ->> 'farm_id')::uuid, v_claims ->> 'sub');
END
$fn$;
COMMENT ON FUNCTION farmops.begin_tenant_verified(text) IS
'Verifies an HS256 JWT of the product''s auth service (claims farm_id, sub, exp; nbf/iat honoured; 30 s leeway), '
'then does what begin_tenant does; returns the role. OF021 invalid, OF022 expired, OF023 not yet valid, '
'OF002 not a member, OF004 the login may not act in this installation.';

-- Owner functions: not granted to the application (sql/policies revoke by default),
-- and they run as the caller, who must be able to write the private tables.

CREATE OR REPLACE FUNCTION farmops.set_identity_key(p_kid text, p_secret bytea, p_not_after timestamptz DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF p_kid IS NULL OR char_length(p_kid) NOT BETWEEN 1 AND 128 OR p_kid ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION 'key id must be 1 to 128 printable characters' USING ERRCODE = 'OF006';
    END IF;
    IF p_secret IS NULL OR octet_length(p_secret) NOT BETWEEN 32 AND 1024 THEN
        -- Never echo the secret.
        RAISE EXCEPTION 'identity key secret must have 32 to 1024 bytes' USING ERRCODE = 'OF006';
    END IF;
    INSERT INTO farmops.identity_keys AS k (kid, secret, not_after)
    VALUES (p_kid, p_secret, p_not_after)
    ON CONFLICT ON CONSTRAINT identity_key_ids_are_unique
    DO UPDATE SET secret = excluded.secret, not_after = excluded.not_after, created_at = now();
END
$fn$;
COMMENT ON FUNCTION farmops.set_identity_key(text, bytea, timestamptz) IS
'Package owner only: installs (or replaces) the auth service key p_kid (32 to 1024 bytes), optionally retired '
'after p_not_after. Rotate by adding a new kid, then dropping the old one once its tokens expired.';

CREATE OR REPLACE FUNCTION farmops.drop_identity_key(p_kid text)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF p_kid IS NULL THEN
        RAISE EXCEPTION 'drop_identity_key needs a key id' USING ERRCODE = 'OF006';
    END IF;
    DELETE FROM farmops.identity_keys AS k WHERE k.kid = p_kid;
    RETURN FOUND;
END
$fn$;
COMMENT ON FUNCTION farmops.drop_identity_key(text) IS
'Package owner only: removes the key p_kid; its tokens stop verifying at once. Returns whether it existed.';

CREATE OR REPLACE FUNCTION farmops.require_verified_identity(p_required boolean)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF p_required IS NULL THEN
        RAISE EXCEPTION 'require_verified_identity needs true or false' USING ERRCODE = 'OF006';
    END IF;
    INSERT INTO farmops.identity_settings AS s (singleton, verified_identity_required)
    VALUES (true, p_required)
    ON CONFLICT ON CONSTRAINT identity_settings_have_one_row
    DO UPDATE SET verified_identity_required = excluded.verified_identity_required;
END
$fn$;
COMMENT ON FUNCTION farmops.require_verified_identity(boolean) IS
'Package owner only: if true, begin_tenant is refused (OF024) for the application, which must then use '
'begin_tenant_verified; the package owner keeps begin_tenant for maintenance.';
