"""Typed settings, read from ``RELOVE_*`` environment variables and an optional ``.env`` file.

A bad value stops start-up with one line naming the variable (see :func:`load_settings`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from relove.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///relove.db"


def _split_ids(value: Any) -> Any:
    if isinstance(value, str):
        parts = [p for p in value.replace(";", ",").replace(" ", ",").split(",") if p]
        return [int(p) for p in parts]
    if isinstance(value, int):
        return [value]
    return value


class Settings(BaseSettings):
    """All settings of the product, one flat namespace grouped by section below."""

    model_config = SettingsConfigDict(
        env_prefix="RELOVE_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    # --- Telegram ---------------------------------------------------------------------------
    bot_token: SecretStr | None = None
    telegram_api_url: str | None = None
    admin_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)

    # --- storage ----------------------------------------------------------------------------
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None

    # --- texts ------------------------------------------------------------------------------
    language: str = "ru"
    texts_dir: Path | None = None

    # --- logging ----------------------------------------------------------------------------
    log_level: str = "INFO"

    # --- sandbox ----------------------------------------------------------------------------
    sandbox_host: str = "127.0.0.1"
    sandbox_port: int = Field(default=8081, ge=1, le=65535)

    # --- broadcasts -------------------------------------------------------------------------
    broadcast_rate: float = Field(default=25.0, gt=0, le=1000)
    broadcast_paid_rate: float = Field(default=1000.0, gt=0, le=1000)
    broadcast_max_errors: int = Field(default=1000, ge=1)
    #: the bot's whole outgoing budget (messages/s); broadcasts leave the rest to replies
    telegram_rate_limit: float = Field(default=30.0, gt=0, le=1000)
    broadcast_concurrency: int = Field(default=50, ge=1, le=1000)
    broadcast_max_attempts: int = Field(default=3, ge=1, le=20)
    broadcast_lease_seconds: float = Field(default=30.0, gt=0)
    broadcast_poll_seconds: float = Field(default=1.0, gt=0)
    #: run due broadcasts inside `relove run` (a separate `relove worker` can run them too)
    broadcast_in_bot: bool = True

    # --- conversation (LLM) -----------------------------------------------------------------
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    llm_model: str | None = None
    llm_timeout: float = Field(default=30.0, gt=0)
    llm_retries: int = Field(default=1, ge=0)
    persona_file: Path | None = None
    scenarios_file: Path | None = None
    catalog_file: Path | None = None
    llm_max_tokens: int = Field(default=800, ge=16, le=16000)
    llm_temperature: float | None = Field(default=None, ge=0, le=2)
    history_turns: int = Field(default=16, ge=2, le=100)
    summary_every: int = Field(default=6, ge=1, le=100)
    llm_user_rate: int = Field(default=6, ge=0)
    llm_user_rate_period: float = Field(default=60.0, gt=0)
    llm_daily_budget: int = Field(default=100, ge=0)
    llm_concurrency: int = Field(default=8, ge=1, le=1000)
    llm_queue_timeout: float = Field(default=10.0, ge=0)
    recommend_count: int = Field(default=3, ge=1, le=10)
    recommend_memory: int = Field(default=20, ge=0, le=200)
    gender_inference: bool = True

    # --- events (history) -------------------------------------------------------------------
    #: days events are kept (PostgreSQL drops a whole month once all of it is older)
    events_retention_days: int = Field(default=365, ge=1, le=36500)
    #: days the conversation (messages both ways) is kept
    messages_retention_days: int = Field(default=90, ge=1, le=36500)

    # --- REST API (`relove serve`) -------------------------------------------------------------
    #: address and port `relove serve` listens on (the API under /api/v1)
    serve_host: str = "127.0.0.1"
    serve_port: int = Field(default=8080, ge=1, le=65535)
    #: uvicorn worker processes of `relove serve` (they share only the database and Redis)
    serve_workers: int = Field(default=1, ge=1, le=64)
    #: requests per second one API token may make on average (a token may set its own)
    api_rate_limit: float = Field(default=50.0, gt=0, le=1_000_000)
    #: how many requests a token may make at once before the average applies (bucket size)
    api_rate_burst: int = Field(default=100, ge=1, le=10_000_000)
    #: largest request body in bytes (413 above it)
    api_max_body: int = Field(default=1024 * 1024, ge=1024, le=1024**3)
    #: largest body of a batch request (POST /users:batch, POST /events) in bytes
    api_max_batch_body: int = Field(default=5 * 1024 * 1024, ge=1024, le=1024**3)
    #: hours the first response to an Idempotency-Key is kept and replayed
    api_idempotency_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    #: a request holding its Idempotency-Key longer than this (seconds) is taken for dead
    api_idempotency_lock_seconds: float = Field(default=300.0, ge=1, le=86400)
    #: seconds a verified token is trusted before it is looked up again: a revocation reaches
    #: every process within this time (0: look the token up on every request)
    api_token_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    # --- Telegram rate limits (shared through Redis when RELOVE_REDIS_URL is set) ---------------
    #: messages per second to one chat, and the short burst allowed above it
    telegram_chat_rate: float = Field(default=1.0, gt=0, le=30)
    telegram_chat_burst: float = Field(default=3.0, ge=1, le=30)
    #: messages per minute to one group
    telegram_group_per_minute: float = Field(default=20.0, gt=0, le=600)
    #: messages of the bot's global budget that broadcasts and automations leave to replies
    #: (a reply finds that many slots at once; while replies use them, bulk senders wait)
    telegram_reply_reserve: float = Field(default=3.0, ge=0, le=100)
    # --- ingest (the update pipeline, database outages) -------------------------------------
    #: seconds an update waits for an unreachable database before it is dropped (with an apology)
    db_outage_grace: float = Field(default=60.0, ge=0, le=3600)
    #: updates held at most (touched, queued per user or being handled); polling pauses past it
    ingest_max_pending: int = Field(default=5000, ge=100, le=1_000_000)

    # --- webhook mode (`relove run --webhook`, `relove webhook set|info|delete`) ---------------
    #: the public HTTPS address Telegram posts updates to (its path is the path served)
    webhook_url: str | None = None
    #: the secret Telegram sends in X-Telegram-Bot-Api-Secret-Token (1-256 of A-Z a-z 0-9 _ -)
    webhook_secret: SecretStr | None = None
    #: host:port the webhook server listens on (behind the TLS proxy / load balancer)
    webhook_listen: str = "127.0.0.1:8443"
    #: simultaneous connections Telegram may open to deliver updates (setWebhook)
    webhook_max_connections: int = Field(default=40, ge=1, le=100)
    #: largest update body in bytes (413 above it)
    webhook_max_body: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    #: seconds an instance holds a user's lane without renewing; a dead instance's lanes are
    #: taken over by the others after this
    webhook_lease: float = Field(default=30.0, ge=1, le=3600)
    #: hours processed updates are kept, so a late redelivery is still recognised
    webhook_keep_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    #: seconds a stopping instance waits for the updates in flight (SIGTERM)
    webhook_drain_seconds: float = Field(default=10.0, ge=0, le=600)

    @field_validator("webhook_secret")
    @classmethod
    def _check_webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        import re

        if value is None or not value.get_secret_value():
            return None
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", value.get_secret_value()):
            raise ValueError("expected 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @field_validator("webhook_url")
    @classmethod
    def _check_webhook_url(cls, value: str | None) -> str | None:
        from urllib.parse import urlsplit

        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
            raise ValueError("expected the public address, e.g. https://bot.example.org/tg")
        return value.strip()

    @field_validator("webhook_listen")
    @classmethod
    def _check_webhook_listen(cls, value: str) -> str:
        host, sep, port = value.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError("expected host:port, e.g. 0.0.0.0:8443 (port 0: any free port)")
        return value.strip()

    # --- bulk import / export ---------------------------------------------------------------
    #: rows per import batch (one transaction, one COPY + upsert on PostgreSQL)
    bulk_batch_size: int = Field(default=10_000, ge=100, le=200_000)
    #: where import jobs keep uploaded files and their errors files (API and console)
    bulk_dir: Path = Path("relove-bulk")

    # --- console ----------------------------------------------------------------------------
    #: the console's public address, used in /login links and tracked button links
    #: (default: http://127.0.0.1:8080, where `relove serve` listens)
    console_url: str | None = None
    #: a console session ends after this many minutes without a request
    console_idle_minutes: int = Field(default=120, ge=5, le=10080)
    #: … and at the latest this many days after login
    console_session_days: int = Field(default=7, ge=1, le=90)
    #: how long a one-time login link from /login or `relove console link` stays valid
    console_login_minutes: int = Field(default=5, ge=1, le=60)
    #: the bot's username for the Telegram Login Widget on /login (needs a public https
    #: domain set with @BotFather /setdomain); unset: no widget
    console_widget_bot: str | None = None
    #: live chat: the companion stays silent for a user this long after an operator wrote
    handoff_minutes: int = Field(default=30, ge=0, le=10080)
    #: live chat: messages one operator may send per minute
    console_chat_per_minute: int = Field(default=30, ge=1, le=600)
    #: bulk marker actions on a filter: at most this many users per action
    console_bulk_max: int = Field(default=50_000, ge=1, le=10_000_000)

    @field_validator("console_url")
    @classmethod
    def _check_console_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from urllib.parse import urlsplit

        parts = urlsplit(value.strip())
        if (parts.scheme not in ("http", "https") or not parts.netloc
                or any(ch in value for ch in "\"'<> \\") or parts.query or parts.fragment):
            raise ValueError("expected the console's address, e.g. https://console.example.org")
        return value.strip().rstrip("/")

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _parse_admin_ids(cls, value: Any) -> Any:
        try:
            return _split_ids(value)
        except ValueError as e:
            raise ValueError("expected comma-separated Telegram user ids, e.g. 1234,5678") from e

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in logging.getLevelNamesMapping():
            raise ValueError("expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return level

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except ArgumentError as e:
            raise ValueError("not a database URL") from e
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError("only sqlite and postgresql URLs are supported")
        return value

    @property
    def token(self) -> str | None:
        return self.bot_token.get_secret_value() if self.bot_token else None

    @property
    def console_base_url(self) -> str:
        return (self.console_url or "http://127.0.0.1:8080").rstrip("/")

    @property
    def llm_enabled(self) -> bool:
        return bool(self.llm_base_url or self.llm_api_key) and bool(self.llm_model)

    # --- sandbox access ---------------------------------------------------------------------
    #: host names / addresses the sandbox answers to besides loopback ones and the address it
    #: listens on (comma-separated, e.g. ``devbox.lan,192.168.1.20``); see docs/sandbox.md
    sandbox_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list,
                                                                  max_length=64)

    @field_validator("sandbox_allowed_hosts", mode="before")
    @classmethod
    def _parse_sandbox_hosts(cls, value: Any) -> Any:
        # each name is checked when the sandbox starts (relove.sandbox.access.check_host_name)
        if isinstance(value, str):
            return [p for p in value.replace(";", ",").replace(" ", ",").split(",") if p]
        return value


def load_settings(**overrides: Any) -> Settings:
    """Build settings or raise :class:`ConfigError` with one line naming the bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as e:
        err = e.errors()[0]
        name = "RELOVE_" + "_".join(str(p) for p in err["loc"]).upper() if err["loc"] else "?"
        message = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{name}: {message}") from None
