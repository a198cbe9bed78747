"""Development bearer tokens: HS256 JWTs whose subject is a principal id."""

from __future__ import annotations

import time

import jwt

ISSUER = "docket"
AUDIENCE = "docket-api"


class TokenError(Exception):
    """The token is missing, malformed, expired or signed with another key."""


def mint(secret: str, principal_id: str, tenant: str, ttl_seconds: int) -> str:
    now = int(time.time())
    claims = {
        "sub": principal_id,
        "tenant": tenant,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def verify(secret: str, token: str) -> dict[str, object]:
    try:
        claims: dict[str, object] = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["sub", "exp", "tenant"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("the token has expired") from exc
    except jwt.PyJWTError as exc:
        raise TokenError(f"the token is not valid: {exc}") from exc
    return claims
