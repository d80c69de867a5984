"""Verified identity: HS256 tokens of the product's auth service open the tenant context
(farmops.begin_tenant_verified), as the application role; HMAC checked against RFC 4231 and
RFC 7515 vectors; the keys are the package owner's alone."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time

import psycopg
import pytest
from support import APP_LOGIN, create_farm, message_of, raises_sqlstate, sqlstate_of, tenant

import farmops_client
from farmops_client.errors import IdentityTokenExpired, IdentityTokenInvalid

KEY = os.urandom(32)
BAD_SIGNATURE = "identity token signature does not verify"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(
    claims, key: bytes = KEY, *, kid: str | None = "k1", header: dict | None = None, digest=hashlib.sha256
):
    """A compact JWS signed like the product's auth service would (header and claims as given)."""
    if header is None:
        header = {"alg": "HS256", "typ": "JWT"} | ({"kid": kid} if kid else {})
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64url(hmac.new(key, signing_input.encode(), digest).digest())}"


def claims(farm, sub: str = "alice", **extra):
    return {"farm_id": str(farm), "sub": sub, "exp": time.time() + 300, "iat": int(time.time())} | extra


def begin_verified(app, token):
    return app.execute("SELECT farmops.begin_tenant_verified(%s)", [token]).fetchone()[0]


def refused(app, token) -> tuple[str | None, str]:
    """SQLSTATE and message of begin_tenant_verified refusing ``token`` (transaction rolled back)."""
    with raises_sqlstate() as excinfo, app.transaction():
        begin_verified(app, token)
    return sqlstate_of(excinfo), message_of(excinfo.value)


@pytest.fixture
def keyed(owner):
    """Key k1 installed by the package owner."""
    owner.execute("SELECT farmops.set_identity_key('k1', %s)", [KEY])
    return owner


# -- the primitives against published vectors (private functions: called as the package owner) ------------
RFC4231 = [
    (b"\x0b" * 20, b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (
        b"Jefe",
        b"what do ya want for nothing?",
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    ),
    (b"\xaa" * 20, b"\xdd" * 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    (bytes(range(1, 26)), b"\xcd" * 50, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
    (b"\x0c" * 20, b"Test With Truncation", "a3b6167473100ee06e0c796c2955552b"),  # first 128 bits
    (
        b"\xaa" * 131,
        b"Test Using Larger Than Block-Size Key - Hash Key First",
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    ),
    (
        b"\xaa" * 131,
        b"This is a test using a larger than block-size key and a larger than block-size data. The key needs"
        b" to be hashed before being used by the HMAC algorithm.",
        "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
    ),
]


@pytest.mark.parametrize(("key", "message", "expected"), RFC4231, ids=[f"case{i}" for i in range(1, 8)])
def test_hmac_sha256_matches_rfc4231(owner, key, message, expected):
    digest = owner.execute("SELECT farmops._hmac_sha256(%s, %s)", [key, message]).fetchone()[0]
    assert digest.hex()[: len(expected)] == expected
    assert digest == hmac.new(key, message, hashlib.sha256).digest()


def test_hmac_sha256_on_block_boundary_keys_matches_python(owner):
    for size in (0, 1, 63, 64, 65, 1024):
        key, message = os.urandom(size), os.urandom(size * 3)
        digest = owner.execute("SELECT farmops._hmac_sha256(%s, %s)", [key, message]).fetchone()[0]
        assert digest == hmac.new(key, message, hashlib.sha256).digest(), size


def test_base64url_round_trips_and_refuses_non_canonical_text(owner):
    for size in range(0, 70):
        data = os.urandom(size)
        text = owner.execute("SELECT farmops._base64url_encode(%s)", [data]).fetchone()[0]
        assert text == b64url(data)
        assert owner.execute("SELECT farmops._base64url_decode(%s)", [text]).fetchone()[0] == data
    for text in ["QR", "QQ==", "QQ=", "Q", "a+b/", "a b", "ab\n", "é"]:  # "QR": trailing bits set
        assert owner.execute("SELECT farmops._base64url_decode(%s)", [text]).fetchone()[0] is None, text


# RFC 7515 Appendix A.1: the HS256 example, its JWK key and exact compact serialization.
RFC7515_KEY = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"
RFC7515_JWS = (
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
)


def test_rfc7515_a1_example_verifies(owner, app):
    key = owner.execute("SELECT farmops._base64url_decode(%s)", [RFC7515_KEY]).fetchone()[0]
    signing_input, _, signature = RFC7515_JWS.rpartition(".")
    computed = owner.execute(
        "SELECT farmops._base64url_encode(farmops._hmac_sha256(%s, convert_to(%s, 'UTF8')))",
        [key, signing_input],
    ).fetchone()[0]
    assert computed == signature
    # Through the public function: the signature verifies (the example's claims name no farm, so
    # it then fails on claims, not on the signature); one flipped signature character does not.
    owner.execute("SELECT farmops.set_identity_key('rfc7515', %s)", [key])
    assert refused(app, RFC7515_JWS) == ("OF021", "identity token claims are incomplete")
    assert refused(app, RFC7515_JWS[:-1] + "Y") == ("OF021", BAD_SIGNATURE)


# -- a valid token ------------------------------------------------------------------------------------------
def test_valid_token_opens_the_context_and_rls_shows_the_farm(app, keyed, two_farms):
    farm_a, _farm_b = two_farms
    with app.transaction():
        assert begin_verified(app, mint(claims(farm_a))) == "owner"
        assert app.execute(
            "SELECT farm_id, user_id, member_role FROM farmops.tenant_context()"
        ).fetchone() == (
            farm_a,
            "alice",
            "owner",
        )
        assert app.execute("SELECT id FROM farmops.farms").fetchall() == [(farm_a,)]
        assert app.execute("SELECT current_user").fetchone() == (APP_LOGIN,)
    # transaction-local: gone after commit, like begin_tenant's context
    assert app.execute("SELECT farm_id FROM farmops.tenant_context()").fetchone() == (None,)
    assert app.execute("SELECT count(*) FROM farmops.farms").fetchone() == (0,)


def test_the_verified_context_carries_the_member_role(app, keyed, farm):
    with tenant(app, farm, "alice"):
        app.execute("SELECT farmops.add_member(%s, 'musa', 'viewer')", [farm])
    with app.transaction():
        assert begin_verified(app, mint(claims(farm, "musa"))) == "viewer"
        with raises_sqlstate("OF003"):
            app.execute("SELECT farmops.add_member(%s, 'bola', 'worker')", [farm])


def test_token_without_kid_uses_the_only_key_and_optional_claims_may_be_absent(app, keyed, farm):
    token = mint({"farm_id": str(farm), "sub": "alice", "exp": int(time.time()) + 60}, kid=None)
    with app.transaction():
        assert begin_verified(app, token) == "owner"
    header_without_typ = mint(claims(farm), header={"alg": "HS256", "kid": "k1"})
    with app.transaction():
        assert begin_verified(app, header_without_typ) == "owner"


# -- time ---------------------------------------------------------------------------------------------------
def test_expired_token_is_refused_beyond_the_leeway(app, keyed, farm):
    assert refused(app, mint(claims(farm, exp=int(time.time()) - 60))) == (
        "OF022",
        "identity token has expired",
    )
    with app.transaction():  # within the documented 30 s leeway
        assert begin_verified(app, mint(claims(farm, exp=int(time.time()) - 10))) == "owner"


def test_not_yet_valid_token_is_refused(app, keyed, farm):
    future = int(time.time()) + 120
    assert refused(app, mint(claims(farm, nbf=future)))[0] == "OF023"
    assert refused(app, mint(claims(farm, iat=future)))[0] == "OF023"
    with app.transaction():
        assert begin_verified(app, mint(claims(farm, nbf=int(time.time()) + 10))) == "owner"


def test_replaying_a_token_works_in_other_transactions_only_until_exp(app, keyed, farm):
    """Tokens are bearer credentials: whoever holds one may reuse it until it expires."""
    exp = time.time() - 30 + 2  # 2 s of life left, given the 30 s leeway
    token = mint(claims(farm, exp=exp))
    for _ in range(2):
        with app.transaction():
            assert begin_verified(app, token) == "owner"
    time.sleep(max(0.0, exp + 30 - time.time()) + 0.2)
    assert refused(app, token)[0] == "OF022"


# -- forgeries ----------------------------------------------------------------------------------------------
def test_tampered_payload_or_signature_is_refused(app, keyed, two_farms):
    farm_a, farm_b = two_farms
    header, _, signature = mint(claims(farm_a)).split(".")
    forged_payload = b64url(json.dumps(claims(farm_b, "bob")).encode())
    assert refused(app, f"{header}.{forged_payload}.{signature}") == ("OF021", BAD_SIGNATURE)
    other_signature = mint(claims(farm_b, "bob")).split(".")[2]
    token = mint(claims(farm_a))
    assert refused(app, f"{token.rsplit('.', 1)[0]}.{other_signature}") == ("OF021", BAD_SIGNATURE)
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    assert refused(app, flipped)[0] == "OF021"
    assert refused(app, token + "A")[0] == "OF021"  # a longer signature


def test_wrong_key_and_unknown_kid_fail_alike(app, keyed, farm):
    assert refused(app, mint(claims(farm), os.urandom(32))) == ("OF021", BAD_SIGNATURE)
    # An unknown key id reads exactly like a bad signature: existing key ids cannot be probed.
    assert refused(app, mint(claims(farm), kid="k-does-not-exist")) == ("OF021", BAD_SIGNATURE)
    assert refused(app, mint(claims(farm), kid="k1'; --")) == ("OF021", BAD_SIGNATURE)


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "none", "typ": "JWT", "kid": "k1"},
        {"alg": "HS512", "typ": "JWT", "kid": "k1"},
        {"alg": "RS256", "typ": "JWT", "kid": "k1"},
        {"alg": "hs256", "kid": "k1"},
        {"alg": ["HS256"], "kid": "k1"},
        {"typ": "JWT", "kid": "k1"},
        {"alg": "HS256", "typ": "JWE", "kid": "k1"},
        {"alg": "HS256", "typ": 1, "kid": "k1"},
        {"alg": "HS256", "kid": 1},
        {"alg": "HS256", "kid": "k1", "crit": ["exp"]},
    ],
    ids=lambda h: json.dumps(h),
)
def test_only_hs256_headers_are_accepted(app, keyed, farm, header):
    # Signed correctly with the installed key (HMAC-SHA256), so only the header is at fault.
    assert refused(app, mint(claims(farm), header=header))[0] == "OF021"


def test_unsigned_and_hs512_tokens_are_refused(app, keyed, farm):
    none_token = mint(claims(farm), header={"alg": "none", "typ": "JWT"}).rsplit(".", 1)[0]
    assert refused(app, none_token + ".")[0] == "OF021"
    assert refused(app, none_token)[0] == "OF021"
    hs512 = mint(claims(farm), header={"alg": "HS512", "kid": "k1"}, digest=hashlib.sha512)
    assert refused(app, hs512)[0] == "OF021"


@pytest.mark.parametrize(
    "change",
    [
        {"sub": None},
        {"farm_id": None},
        {"exp": None},
        {"sub": 42},
        {"farm_id": "not-a-uuid"},
        {"farm_id": 7},
        {"exp": "tomorrow"},
        {"nbf": "now"},
        {"iat": True},
    ],
    ids=lambda c: json.dumps(c),
)
def test_missing_or_mistyped_claims_are_refused(app, keyed, farm, change):
    body = {k: v for k, v in (claims(farm) | change).items() if v is not None}
    assert refused(app, mint(body)) == ("OF021", "identity token claims are incomplete")


def test_signed_payload_that_is_not_an_object_is_refused(app, keyed, farm):
    header = b64url(json.dumps({"alg": "HS256", "kid": "k1"}).encode())
    for payload in [b"[1, 2]", b'"text"', b"{not json", b"\xff\xfe", b'{"sub": "\\u0000"}']:
        signing_input = f"{header}.{b64url(payload)}"
        sig = b64url(hmac.new(KEY, signing_input.encode(), hashlib.sha256).digest())
        assert refused(app, f"{signing_input}.{sig}") == ("OF021", "identity token claims are incomplete")


def test_non_member_and_other_farm_are_refused_like_begin_tenant(app, keyed, two_farms):
    farm_a, farm_b = two_farms
    assert refused(app, mint(claims(farm_a, "mallory")))[0] == "OF002"
    assert refused(app, mint(claims(farm_b, "alice")))[0] == "OF002"
    assert refused(app, mint(claims("00000000-0000-0000-0000-000000000000")))[0] == "OF002"
    assert refused(app, mint(claims(farm_a, "x" * 5000)))[0] == "OF002"


@pytest.mark.parametrize(
    "token",
    [
        None,
        "",
        "...",
        "..",
        "a.b",
        "a.b.c.d",
        "a$.b.c",
        "eyJhbGciOiJIUzI1NiJ9.e30",
        " " + "a.b.c",
        "a.b.c\n",
        "x" * (1 << 20),
        ("a" * 4000) + "." + ("b" * 4000) + "." + ("c" * 200),
        b64url(b"{not json") + ".e30.AAAA",
        b64url(b"[1]") + ".e30.AAAA",
        b64url(b"\xff\xfe") + ".e30.AAAA",
        b64url(b'{"alg": "\\u0000"}') + ".e30.AAAA",
        b64url(b"[" * 6000) + ".e30.AAAA",
        "eyJhbGciOiJIUzI1NiJ9=.e30.AAAA",  # padding
        "eyJhbGciOiJIUzI1NiJ9.e30.AAAAA",  # 4n+1 characters
    ],
    ids=lambda t: "None" if t is None else repr(t[:24]) + f"~{len(t)}",
)
def test_garbage_is_refused_as_invalid(app, keyed, token):
    assert refused(app, token)[0] == "OF021"


# -- keys: rotation, privacy, owner functions ---------------------------------------------------------------
def test_key_rotation_with_two_kids(app, owner, farm):
    old, new = os.urandom(32), os.urandom(48)
    owner.execute("SELECT farmops.set_identity_key('2026-11', %s)", [old])
    owner.execute("SELECT farmops.set_identity_key('2026-12', %s)", [new])
    for kid, key in [("2026-11", old), ("2026-12", new)]:
        with app.transaction():
            assert begin_verified(app, mint(claims(farm), key, kid=kid)) == "owner"
    # Without a kid there is no single key to choose: refused.
    assert refused(app, mint(claims(farm), new, kid=None)) == ("OF021", BAD_SIGNATURE)
    # A key signs only under its own kid.
    assert refused(app, mint(claims(farm), old, kid="2026-12")) == ("OF021", BAD_SIGNATURE)
    assert owner.execute("SELECT farmops.drop_identity_key('2026-11')").fetchone() == (True,)
    assert owner.execute("SELECT farmops.drop_identity_key('2026-11')").fetchone() == (False,)
    assert refused(app, mint(claims(farm), old, kid="2026-11")) == ("OF021", BAD_SIGNATURE)
    with app.transaction():  # one key left: a token without kid uses it
        assert begin_verified(app, mint(claims(farm), new, kid=None)) == "owner"
    # A retired key (not_after passed) no longer verifies.
    owner.execute("SELECT farmops.set_identity_key('2026-12', %s, now() - interval '1 second')", [new])
    assert refused(app, mint(claims(farm), new, kid="2026-12")) == ("OF021", BAD_SIGNATURE)


def test_no_key_installed_refuses_every_token(app, farm):
    assert refused(app, mint(claims(farm))) == ("OF021", BAD_SIGNATURE)


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM farmops.identity_keys",
        "SELECT * FROM farmops.identity_settings",
        "UPDATE farmops.identity_settings SET verified_identity_required = false",
        "INSERT INTO farmops.identity_keys (kid, secret) VALUES ('mine', '\\x00')",
        "SELECT farmops.set_identity_key('mine', decode(repeat('ab', 32), 'hex'))",
        "SELECT farmops.drop_identity_key('k1')",
        "SELECT farmops.require_verified_identity(false)",
        "SELECT farmops._hmac_sha256('\\x00', '\\x00')",
        "SELECT farmops._enter_tenant(gen_random_uuid(), 'alice')",
        "SELECT farmops._assert_unverified_identity_allowed()",
    ],
)
def test_the_app_role_cannot_read_keys_or_call_owner_functions(app, keyed, statement):
    with raises_sqlstate("42501"):
        app.execute(statement)


def test_even_a_stray_grant_shows_the_app_no_key(app, keyed, admin):
    admin.execute("GRANT SELECT ON farmops.identity_keys TO farmops_app")
    assert app.execute("SELECT count(*) FROM farmops.identity_keys").fetchone() == (0,)


def test_owner_functions_validate_their_arguments(owner):
    for statement, params in [
        ("SELECT farmops.set_identity_key(NULL, %s)", [KEY]),
        ("SELECT farmops.set_identity_key('', %s)", [KEY]),
        ("SELECT farmops.set_identity_key(%s, %s)", ["k" * 129, KEY]),
        ("SELECT farmops.set_identity_key(%s, %s)", ["k\n1", KEY]),
        ("SELECT farmops.set_identity_key('k1', NULL)", []),
        ("SELECT farmops.set_identity_key('k1', %s)", [KEY[:31]]),
        ("SELECT farmops.set_identity_key('k1', %s)", [os.urandom(1025)]),
        ("SELECT farmops.drop_identity_key(NULL)", []),
        ("SELECT farmops.require_verified_identity(NULL)", []),
    ]:
        with raises_sqlstate("OF006", statement) as excinfo:
            owner.execute(statement, params)
        assert KEY.hex() not in str(excinfo.value)
    assert owner.execute("SELECT count(*) FROM farmops.identity_keys").fetchone() == (0,)


# -- an installation that requires verified identity ---------------------------------------------------------
def test_required_verified_identity_refuses_begin_tenant_for_the_app_only(app, keyed, admin, db, farm):
    keyed.execute("SELECT farmops.require_verified_identity(true)")
    with raises_sqlstate("OF024"), tenant(app, farm, "alice"):
        pass
    with app.transaction():
        assert begin_verified(app, mint(claims(farm))) == "owner"
        assert app.execute("SELECT count(*) FROM farmops.farms").fetchone() == (1,)
    # Maintenance paths keep begin_tenant: the package owner and a login that is a member of it.
    with tenant(keyed, farm, "alice"):
        assert keyed.execute("SELECT farmops.current_user_id()").fetchone() == ("alice",)
    dba_login = f"farmops_test_dba_{os.getpid()}"
    admin.execute(f"CREATE ROLE {dba_login} LOGIN NOSUPERUSER IN ROLE farmops_owner")
    try:
        with psycopg.connect(db.dsn(dba_login), autocommit=True) as dba, tenant(dba, farm, "alice"):
            assert dba.execute("SELECT farmops.current_user_id(), session_user").fetchone() == (
                "alice",
                dba_login,
            )
    finally:
        admin.execute(f"DROP ROLE {dba_login}")
    keyed.execute("SELECT farmops.require_verified_identity(false)")
    with tenant(app, farm, "alice"):
        assert app.execute("SELECT farmops.current_user_id()").fetchone() == ("alice",)


# -- the client ---------------------------------------------------------------------------------------------
def test_client_tenant_from_token(db, keyed, farm):
    client = farmops_client.connect(db.dsn(APP_LOGIN), max_size=2)
    try:
        with client.tenant_from_token(mint(claims(farm))) as t:
            assert (t.farm_id, t.user_id) == (farm, "alice")
            assert t.farm()["id"] == farm
            assert t.role == "owner"
            t.commit()
            keyed.execute("SELECT farmops.drop_identity_key('k1')")
            with pytest.raises(IdentityTokenInvalid):  # every transaction verifies the token again
                t.balance()
        with client.tenant(farm, "alice") as t:  # the unverified path keeps working
            assert t.balance() == 0
        keyed.execute("SELECT farmops.set_identity_key('k1', %s)", [KEY])
        with pytest.raises(IdentityTokenExpired), client.tenant_from_token(mint(claims(farm, exp=1))):
            pass
        with (
            pytest.raises(IdentityTokenInvalid),
            client.tenant_from_token(mint(claims(farm), os.urandom(32))),
        ):
            pass
    finally:
        client.close()


def test_create_farm_still_works_without_a_context_when_required(app, keyed):
    keyed.execute("SELECT farmops.require_verified_identity(true)")
    assert create_farm(app, "New Farm", "zainab") is not None


def test_async_client_tenant_from_token(db, keyed, farm):
    import asyncio

    from farmops_client import aio

    async def scenario():
        client = await aio.connect(db.dsn(APP_LOGIN), max_size=2)
        try:
            async with client.tenant_from_token(mint(claims(farm))) as t:
                assert (t.farm_id, t.user_id) == (farm, "alice")
                assert (await t.farm())["id"] == farm
                keyed.execute("SELECT farmops.drop_identity_key('k1')")
                with pytest.raises(IdentityTokenInvalid):  # every transaction verifies the token again
                    await t.balance()
            keyed.execute("SELECT farmops.set_identity_key('k1', %s)", [KEY])
            with pytest.raises(IdentityTokenExpired):
                async with client.tenant_from_token(mint(claims(farm, exp=1))):
                    pass
        finally:
            await client.close()

    asyncio.run(scenario())
