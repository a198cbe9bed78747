"""Development bearer tokens and settings safety checks."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest

from docket import tokens
from docket.errors import ConfigurationError
from docket.settings import PLACEHOLDER_JWT_SECRET, Settings

SECRET = "a" * 40
OTHER = "b" * 40


def test_mint_and_verify_round_trip() -> None:
    claims = tokens.verify(SECRET, tokens.mint(SECRET, "carol", "meridian", 60))
    assert claims["sub"] == "carol"
    assert claims["tenant"] == "meridian"
    assert claims["aud"] == tokens.AUDIENCE
    assert claims["iss"] == tokens.ISSUER
    assert isinstance(claims["exp"], int)
    assert claims["exp"] - time.time() == pytest.approx(60, abs=5)


def test_expired_token() -> None:
    token = tokens.mint(SECRET, "carol", "meridian", -30)
    with pytest.raises(tokens.TokenError, match="expired"):
        tokens.verify(SECRET, token)


def test_wrong_key() -> None:
    with pytest.raises(tokens.TokenError):
        tokens.verify(OTHER, tokens.mint(SECRET, "carol", "meridian", 60))


def claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    base: dict[str, object] = {
        "sub": "carol",
        "tenant": "meridian",
        "iss": tokens.ISSUER,
        "aud": tokens.AUDIENCE,
        "iat": now,
        "exp": now + 60,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


@pytest.mark.parametrize(
    "bad",
    [
        {"aud": "someone-else"},
        {"aud": None},
        {"iss": "not-docket"},
        {"tenant": None},
        {"sub": None},
        {"exp": None},
    ],
    ids=["wrong-audience", "no-audience", "wrong-issuer", "no-tenant", "no-subject", "no-expiry"],
)
def test_tokens_with_wrong_or_missing_claims(bad: dict[str, object]) -> None:
    token = jwt.encode(claims(**bad), SECRET, algorithm="HS256")
    with pytest.raises(tokens.TokenError):
        tokens.verify(SECRET, token)


def test_a_well_formed_hand_made_token_verifies() -> None:
    # Control for the test above: the same construction with nothing wrong passes.
    token = jwt.encode(claims(), SECRET, algorithm="HS256")
    assert tokens.verify(SECRET, token)["sub"] == "carol"


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c"])
def test_garbage_is_rejected(token: str) -> None:
    with pytest.raises(tokens.TokenError):
        tokens.verify(SECRET, token)


def test_unsigned_token_is_rejected() -> None:
    token = jwt.encode(claims(), None, algorithm="none")
    with pytest.raises(tokens.TokenError):
        tokens.verify(SECRET, token)


# ----------------------------------------------------------------- settings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("DOCKET_ENV", "DOCKET_JWT_SECRET", "DATABASE_URL", "DOCKET_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)


def test_production_refuses_the_placeholder_secret(clean_env: None) -> None:
    settings = Settings(_env_file=None, env="production")
    assert settings.jwt_secret == PLACEHOLDER_JWT_SECRET
    with pytest.raises(ConfigurationError) as err:
        settings.check_production()
    assert "DOCKET_JWT_SECRET" in err.value.message
    assert err.value.hint


def test_production_refuses_a_short_secret(clean_env: None) -> None:
    with pytest.raises(ConfigurationError):
        Settings(_env_file=None, env="production", jwt_secret="short").check_production()


def test_production_accepts_a_real_secret(clean_env: None) -> None:
    Settings(_env_file=None, env="production", jwt_secret="f" * 64).check_production()


def test_development_tolerates_the_placeholder(clean_env: None) -> None:
    Settings(_env_file=None).check_production()


def test_production_secret_from_the_environment(clean_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKET_ENV", "production")
    with pytest.raises(ConfigurationError):
        Settings(_env_file=None).check_production()
    monkeypatch.setenv("DOCKET_JWT_SECRET", "e" * 48)
    Settings(_env_file=None).check_production()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:p@db:5432/docket", "postgresql+psycopg://u:p@db:5432/docket"),
        ("postgresql://u:p@db/docket", "postgresql+psycopg://u:p@db/docket"),
        ("postgresql+psycopg://u:p@db/docket", "postgresql+psycopg://u:p@db/docket"),
        ("sqlite:////var/lib/docket.db", "sqlite:////var/lib/docket.db"),
    ],
)
def test_db_url_from_database_url(clean_env: None, monkeypatch: pytest.MonkeyPatch, url: str, expected: str) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    assert Settings(_env_file=None).db_url == expected


def test_db_url_defaults_to_sqlite_in_the_data_dir(clean_env: None, tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path)
    assert settings.db_url == f"sqlite:///{(tmp_path / 'docket.db').as_posix()}"
