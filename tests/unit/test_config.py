"""Configuration order (defaults → environment → overrides), the instance secret and database URLs."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from app.config import DEFAULTS, instance_secret, load, normalise_database_url


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No configuration from the machine running the tests."""
    for name in (
        "DATABASE_URL",
        "REDIS_URL",
        "SECRET_KEY",
        "MAX_CONTENT_LENGTH",
        "SESSION_COOKIE_SECURE",
        "RQ_QUEUE_PREFIX",
        "LOG_LEVEL",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults_fill_sqlite_under_instance(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = load(tmp_path)
    assert config["DATABASE_URL"] == f"sqlite:///{tmp_path / 'minhu.sqlite3'}"
    assert config["SQLALCHEMY_DATABASE_URI"] == config["DATABASE_URL"]
    assert config["MAX_CONTENT_LENGTH"] == DEFAULTS["MAX_CONTENT_LENGTH"]
    assert config["REDIS_URL"] is None and config["WTF_CSRF_ENABLED"] is True


def test_environment_overrides_defaults_and_converts_types(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("MAX_CONTENT_LENGTH", "1234")
    clean_env.setenv("SESSION_COOKIE_SECURE", "true")
    clean_env.setenv("LOG_LEVEL", "DEBUG")
    clean_env.setenv("SECRET_KEY", "from-env")
    config = load(tmp_path)
    assert config["MAX_CONTENT_LENGTH"] == 1234
    assert config["SESSION_COOKIE_SECURE"] is True
    assert (config["LOG_LEVEL"], config["SECRET_KEY"]) == ("DEBUG", "from-env")


def test_empty_environment_values_are_ignored(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("MAX_CONTENT_LENGTH", "")
    assert load(tmp_path)["MAX_CONTENT_LENGTH"] == DEFAULTS["MAX_CONTENT_LENGTH"]


def test_overrides_win_over_environment(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("MAX_CONTENT_LENGTH", "1234")
    clean_env.setenv("SECRET_KEY", "from-env")
    config = load(tmp_path, {"MAX_CONTENT_LENGTH": 99, "SECRET_KEY": "from-override"})
    assert (config["MAX_CONTENT_LENGTH"], config["SECRET_KEY"]) == (99, "from-override")


def test_secret_is_generated_once_private_and_reused(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    first = load(tmp_path)["SECRET_KEY"]
    path = tmp_path / "secret_key"
    assert path.exists() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32 and first != "test-secret"
    assert load(tmp_path)["SECRET_KEY"] == first == instance_secret(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    assert instance_secret(other) != first  # random per instance, not a constant


def test_explicit_secret_does_not_write_a_file(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    load(tmp_path, {"SECRET_KEY": "given"})
    assert not (tmp_path / "secret_key").exists()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:////tmp/x.sqlite3", "sqlite:////tmp/x.sqlite3"),
    ],
)
def test_postgres_urls_use_psycopg3(url: str, expected: str) -> None:
    assert normalise_database_url(url) == expected


def test_database_url_from_environment_is_normalised(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("DATABASE_URL", "postgres://u@h/db")
    assert load(tmp_path)["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@h/db"
