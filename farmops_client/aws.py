"""AWS identities: one for the database (RDS IAM auth), one for Bedrock, configured separately.

A deployment runs with two roles: a DB-only role that may ``rds-db:connect`` and an AI-only role
that may call Bedrock and has no database access, so each credential's blast radius is small.
:class:`AwsIdentities` holds one boto3 session per purpose. Each is built from, in order:
an explicit role ARN (assumed through STS with auto-refreshing credentials), a named profile,
or the default credential chain.

Environment (all optional): ``FARMOPS_DB_ROLE_ARN`` / ``FARMOPS_DB_AWS_PROFILE`` and
``FARMOPS_BEDROCK_ROLE_ARN`` / ``FARMOPS_BEDROCK_AWS_PROFILE``; ``AWS_REGION`` as usual, or
``FARMOPS_BEDROCK_REGION`` for Bedrock alone.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

import boto3
from botocore.config import Config

#: RDS IAM tokens live 15 minutes; a new one is generated after this many seconds.
TOKEN_REFRESH_SECONDS = 10 * 60


def session_for(role_arn: str | None = None, profile: str | None = None, region: str | None = None):
    """A boto3 session: ``role_arn`` assumed with refreshing credentials, else ``profile``, else default."""
    base = (
        boto3.Session(profile_name=profile, region_name=region)
        if profile
        else boto3.Session(region_name=region)
    )
    if not role_arn:
        return base
    from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials
    from botocore.session import Session as BotocoreSession

    fetcher = AssumeRoleCredentialFetcher(
        client_creator=base._session.create_client,
        source_credentials=base.get_credentials(),
        role_arn=role_arn,
        extra_args={"RoleSessionName": "farmops"},
    )
    core = BotocoreSession()
    core._credentials = DeferredRefreshableCredentials(
        method="assume-role", refresh_using=fetcher.fetch_credentials
    )
    return boto3.Session(botocore_session=core, region_name=region or base.region_name)


@dataclass
class AwsIdentities:
    """The database identity and the Bedrock identity (two boto3 sessions; may be the same)."""

    db: Any = None
    bedrock: Any = None

    @classmethod
    def from_env(cls) -> AwsIdentities:
        """Build both sessions from the FARMOPS_* environment variables (see module docstring)."""
        env = os.environ.get
        region = env("AWS_REGION") or env("AWS_DEFAULT_REGION")
        return cls(
            db=session_for(env("FARMOPS_DB_ROLE_ARN"), env("FARMOPS_DB_AWS_PROFILE"), region),
            bedrock=session_for(
                env("FARMOPS_BEDROCK_ROLE_ARN"),
                env("FARMOPS_BEDROCK_AWS_PROFILE"),
                env("FARMOPS_BEDROCK_REGION") or region,
            ),
        )

    def bedrock_client(self, *, max_attempts: int = 4, read_timeout: int = 120):
        """A ``bedrock-runtime`` client with botocore's standard retry mode (throttling, 5xx).

        ``max_attempts`` is botocore's ``retries["max_attempts"]``: the number of RETRIES.
        """
        session = self.bedrock or boto3.Session()
        return session.client(
            "bedrock-runtime",
            config=Config(
                retries={"mode": "standard", "max_attempts": max_attempts}, read_timeout=read_timeout
            ),
        )


def has_aws_credentials(session=None) -> bool:
    """Whether the session (default: boto3's default chain) resolves any credentials."""
    try:
        return (session or boto3.Session()).get_credentials() is not None
    except Exception:  # a broken profile is "no credentials" for this question
        return False


class IamAuthToken:
    """RDS/Aurora IAM authentication: a fresh ``generate_db_auth_token`` password when needed.

    Used as psycopg_pool's ``kwargs`` callable, so every NEW connection gets a token that is
    less than :data:`TOKEN_REFRESH_SECONDS` old (tokens are valid for 15 minutes and are only
    checked at connect time). Generating a token is local SigV4 signing, no network call.
    """

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        *,
        session=None,
        region: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        extra: dict[str, Any] | None = None,
    ):
        self.host, self.port, self.user = host, int(port), user
        self.session = session or boto3.Session()
        self.region = region or self.session.region_name
        self.clock = clock
        self.extra = {"sslmode": "require", **(extra or {})}
        self._lock = threading.Lock()
        self._token: str | None = None
        self._made_at = 0.0
        #: How many tokens were generated (observable in tests).
        self.generated = 0

    @classmethod
    def from_dsn(cls, dsn: str, **kwargs: Any) -> IamAuthToken:
        """Take host, port and user from a ``postgresql://user@host:port/db`` DSN."""
        url = urlparse(dsn)
        if not url.hostname or not url.username:
            raise ValueError("IAM auth needs a DSN with a user and a host")
        return cls(url.hostname, url.port or 5432, unquote(url.username), **kwargs)

    def token(self) -> str:
        """The current token, regenerated when older than the refresh interval."""
        with self._lock:
            now = self.clock()
            if self._token is None or now - self._made_at >= TOKEN_REFRESH_SECONDS:
                rds = self.session.client("rds", region_name=self.region)
                self._token = rds.generate_db_auth_token(
                    DBHostname=self.host, Port=self.port, DBUsername=self.user, Region=self.region
                )
                self._made_at = now
                self.generated += 1
            return self._token

    def __call__(self) -> dict[str, Any]:
        """Connection kwargs for psycopg: the password (token) and TLS, as the pool asks."""
        return {**self.extra, "password": self.token()}
