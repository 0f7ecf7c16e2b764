"""Service settings: one pydantic-settings class read from ``TIAN_*`` environment variables."""

from __future__ import annotations

import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRET = "changethis"


class SettingsError(ValueError):
    """A setting that would make the service unsafe or unable to start."""


class Settings(BaseSettings):
    """Every setting of the reviewer service (environment variables ``TIAN_<NAME>``).

    Attributes:
        environment: ``development`` (default) or ``production``. In production the secret
            key must be set; in development one is generated and kept in the data folder.
        data_dir: folder for the SQLite database, uploads, the model registry and the
            generated secret key (``TIAN_DATA_DIR``, default ``./var``).
        db_url: SQLAlchemy URL; default SQLite at ``<data_dir>/tian.db``. PostgreSQL:
            ``postgresql+psycopg://user:pass@host/db``.
        secret_key: signs session cookies; left at the placeholder it is refused outside
            development.
        model_dir: a model bundle folder to serve when the registry has no live model.
        registry_dir: model registry root (default ``<data_dir>/models``).
        encoder: text encoder for duplicates and topics: ``e5-small`` (default), a Hugging
            Face model folder, or ``none`` to switch duplicate and topic search off.
        max_upload_mb: largest accepted upload.
        import_timeout_s, import_memory_mb: limits of the child process that parses an
            upload (a runaway file is stopped there, not in the server).
        max_body_kb: largest accepted body of any other request (JSON, forms).
        session_max_age_s: how long a sign-in lasts (sessions also end at logout, password
            change, disabling or revocation).
        token_max_age_days: lifetime of a new API token (0: until revoked).
        cookie_secure: send the session cookie over HTTPS only (set behind TLS).
        background_jobs: run imports' follow-up analysis in a background thread (tests may
            switch it off to run it inline).
        dedup_threshold: calibrated score at which a pair counts as a likely duplicate
            (default: the shipped scorer's own, chosen on real labelled pairs).
        host, port: where ``tian serve`` listens.
    """

    model_config = SettingsConfigDict(env_prefix="TIAN_", extra="ignore")

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Path("var")
    db_url: str | None = None
    secret_key: str = PLACEHOLDER_SECRET
    model_dir: Path | None = None
    registry_dir: Path | None = None
    encoder: str = "e5-small"
    max_upload_mb: int = Field(default=20, ge=1)
    import_timeout_s: int = Field(default=120, ge=5)
    import_memory_mb: int = Field(default=1024, ge=256)
    max_body_kb: int = Field(default=2048, ge=16)
    session_max_age_s: int = Field(default=8 * 3600, ge=60)
    token_max_age_days: int = Field(default=90, ge=0)
    cookie_secure: bool = False
    background_jobs: bool = True
    dedup_threshold: float | None = Field(default=None, gt=0.0, lt=1.0)
    host: str = "127.0.0.1"
    port: int = 8000

    @cached_property
    def database_url(self) -> str:
        """The SQLAlchemy URL in use (the SQLite default lives in the data folder)."""
        if self.db_url:
            return self.db_url
        return f"sqlite:///{(self.data_dir / 'tian.db').resolve()}"

    @cached_property
    def registry_root(self) -> Path:
        """Folder of the model registry."""
        return self.registry_dir or self.data_dir / "models"

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def max_body_bytes(self) -> int:
        return self.max_body_kb * 1024

    def resolved_secret_key(self) -> str:
        """The session signing key; refuses the placeholder outside development.

        In development a random key is generated once and kept in ``<data_dir>/secret_key``
        (mode 0600), so sign-ins survive restarts without anyone choosing a key.
        """
        if self.secret_key != PLACEHOLDER_SECRET:
            if len(self.secret_key) < 16:
                raise SettingsError("TIAN_SECRET_KEY is too short: use at least 16 characters")
            return self.secret_key
        if self.environment != "development":
            raise SettingsError(
                "TIAN_SECRET_KEY is still the placeholder; set a long random value "
                "(for example `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / "secret_key"
        if not path.is_file():
            from model.atomic import atomic_write_text

            # Created 0600 from the start and renamed in whole: no moment when another user,
            # or a second worker starting at the same time, can read a partial key.
            atomic_write_text(path, secrets.token_urlsafe(48), private=True)
        return path.read_text(encoding="utf-8").strip()
