"""Typed settings, read from ``RELOVE_*`` environment variables and an optional ``.env`` file.

A bad value stops start-up with one line naming the variable (see :func:`load_settings`).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Annotated, Any, Literal

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
    #: the bot's token from @BotFather (`relove run` and `relove worker` refuse to start without it)
    bot_token: SecretStr | None = None
    #: a custom Bot API server, e.g. the sandbox `http://127.0.0.1:8081` (default: Telegram)
    telegram_api_url: str | None = None
    #: comma-separated Telegram user ids allowed to use the bot's admin commands
    admin_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)

    # --- storage ----------------------------------------------------------------------------
    #: `sqlite:///path.db` or `postgresql://user:password@host/db` (async drivers are picked
    #: for you)
    database_url: str = DEFAULT_DATABASE_URL
    #: Redis shared by every process of the bot (rate limits, LLM budgets, API limits);
    #: unset: in-process
    redis_url: str | None = None

    # --- texts ------------------------------------------------------------------------------
    #: the bot's texts: `ru` or `en`
    language: str = "ru"
    #: a folder with your own `ru.yaml` / `en.yaml` overriding any shipped text
    texts_dir: Path | None = None

    # --- logging ----------------------------------------------------------------------------
    #: `DEBUG`, `INFO`, `WARNING`, `ERROR` or `CRITICAL`
    log_level: str = "INFO"

    # --- sandbox ----------------------------------------------------------------------------
    #: address the local sandbox Bot API (`relove sandbox`, `relove demo`) listens on
    sandbox_host: str = "127.0.0.1"
    #: port of the local sandbox
    sandbox_port: int = Field(default=8081, ge=1, le=65535)

    # --- broadcasts -------------------------------------------------------------------------
    #: messages per second one broadcast sends at most (below the bot's limit)
    broadcast_rate: float = Field(default=25.0, gt=0, le=1000)
    #: messages per second of a paid broadcast (`allow_paid_broadcast`)
    broadcast_paid_rate: float = Field(default=1000.0, gt=0, le=1000)
    #: a broadcast pauses after this many failed or unknown deliveries
    broadcast_max_errors: int = Field(default=1000, ge=1)
    #: the bot's whole outgoing budget (messages/s); broadcasts leave the rest to replies
    telegram_rate_limit: float = Field(default=30.0, gt=0, le=1000)
    #: deliveries of one broadcast in flight at once
    broadcast_concurrency: int = Field(default=50, ge=1, le=1000)
    #: attempts per delivery when nothing can have reached Telegram
    broadcast_max_attempts: int = Field(default=3, ge=1, le=20)
    #: a worker's claim on a broadcast lasts this long without renewal (then another takes over)
    broadcast_lease_seconds: float = Field(default=30.0, gt=0)
    #: how often workers look for due broadcasts
    broadcast_poll_seconds: float = Field(default=1.0, gt=0)
    #: run due broadcasts inside `relove run` (a separate `relove worker` can run them too)
    broadcast_in_bot: bool = True

    # --- conversation (LLM) -----------------------------------------------------------------
    #: the model server (OpenAI-compatible), e.g. `http://127.0.0.1:11434/v1` for Ollama
    llm_base_url: str | None = None
    #: the model server's API key
    llm_api_key: SecretStr | None = None
    #: the model's name; unset: the bot runs without an LLM
    llm_model: str | None = None
    #: overall deadline of one LLM call in seconds (retries included)
    llm_timeout: float = Field(default=30.0, gt=0)
    #: SDK retries inside that deadline
    llm_retries: int = Field(default=1, ge=0)
    #: the system prompt (default: the shipped relove/conversation/persona.md)
    persona_file: Path | None = None
    #: question flows (YAML; example in relove/conversation/examples)
    scenarios_file: Path | None = None
    #: the recommendation catalog (YAML)
    catalog_file: Path | None = None
    #: the longest answer the model may write, in tokens
    llm_max_tokens: int = Field(default=800, ge=16, le=16000)
    #: sampling temperature (default: the model's)
    llm_temperature: float | None = Field(default=None, ge=0, le=2)
    #: recent conversation turns kept and sent to the model
    history_turns: int = Field(default=16, ge=2, le=100)
    #: user messages between rewrites of the rolling summary
    summary_every: int = Field(default=6, ge=1, le=100)
    #: LLM calls per user per `RELOVE_LLM_USER_RATE_PERIOD` (0: no limit); shared through
    #: Redis when set
    llm_user_rate: int = Field(default=6, ge=0)
    #: the window of that rate, in seconds
    llm_user_rate_period: float = Field(default=60.0, gt=0)
    #: LLM calls per user per UTC day (0: unlimited); shared through Redis when set
    llm_daily_budget: int = Field(default=100, ge=0)
    #: LLM calls in flight at once (per process, or for all processes with Redis)
    llm_concurrency: int = Field(default=8, ge=1, le=1000)
    #: seconds a call waits for a free slot before the user gets a 'busy' reply
    llm_queue_timeout: float = Field(default=10.0, ge=0)
    #: items per `/recommend`
    recommend_count: int = Field(default=3, ge=1, le=10)
    #: items shown to a user remembered for rotation
    recommend_memory: int = Field(default=20, ge=0, le=200)
    #: infer a user's gender from the first name
    gender_inference: bool = True

    # --- events (history) -------------------------------------------------------------------
    #: days events are kept (PostgreSQL drops a whole month once all of it is older)
    events_retention_days: int = Field(default=365, ge=1, le=36500)
    #: days the conversation (messages both ways) is kept
    messages_retention_days: int = Field(default=90, ge=1, le=36500)

    # --- REST API (`relove serve`) -------------------------------------------------------------
    #: address and port `relove serve` listens on (the API under /api/v1)
    serve_host: str = "127.0.0.1"
    #: port of `relove serve`
    serve_port: int = Field(default=8080, ge=1, le=65535)
    #: uvicorn worker processes of `relove serve` (they share only the database and Redis)
    serve_workers: int = Field(default=1, ge=1, le=64)
    #: uvicorn's access log, one line per request (off: it costs every request some CPU, and
    #: the proxy in front logs requests anyway; errors are logged either way)
    serve_access_log: bool = False
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
    #: largest body of an import upload (POST /imports) in bytes
    api_max_import_body: int = Field(default=256 * 1024 * 1024, ge=1024, le=16 * 1024**3)
    #: seconds between two events of GET /broadcasts/{id}/progress (Server-Sent Events)
    api_progress_every_seconds: float = Field(default=1.0, gt=0, le=60)
    #: check each pooled PostgreSQL connection before the API uses it (pre-ping, one round trip:
    #: on by default, so no request fails after a database restart or failover; off saves that
    #: round trip per request at the price of a 500 per worker after such a restart;
    #: ``GET /users/{id}`` never pings: it retries once on a dropped connection instead)
    api_pool_pre_ping: bool = True
    #: PostgreSQL connections each API worker keeps open (10 more open for bursts and close
    #: again: a connection opened per request costs the database a new backend process). Size it
    #: to the concurrent requests a worker serves
    api_pool_size: int = Field(default=20, ge=1, le=500)
    #: answer the common GET and PATCH /users/{id} and POST /users:batch without FastAPI's
    #: routing (same checks, answers and events; far less CPU). false: all through FastAPI
    api_lean_routes: bool = True
    # --- Telegram rate limits (shared through Redis when RELOVE_REDIS_URL is set) ---------------
    #: messages per second to one chat, and the short burst allowed above it
    telegram_chat_rate: float = Field(default=1.0, gt=0, le=30)
    #: … the burst of messages one chat may get above that rate
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
    #: /readyz of a webhook instance fails while the oldest unprocessed update of the inbox is
    #: older than this many seconds (0: lag is reported, never fails readiness)
    webhook_ready_max_lag: float = Field(default=120.0, ge=0, le=86400)
    #: crash tests only, never in production: the process kills itself with SIGKILL at this
    #: point (``touch``: right after a touch batch committed, before anything else runs)
    fault_kill_at: Literal["touch"] | None = None

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

    # --- operations (health, metrics, logs, replica) ------------------------------------------
    #: ``text`` (human-readable lines) or ``json`` (one JSON object per line, with update_id,
    #: user_id and broadcast_id when known)
    log_format: Literal["text", "json"] = "text"
    #: host:port where `relove run` (polling) and `relove worker` serve /healthz, /readyz and
    #: /metrics (unset: no such server; `relove serve` always has them)
    metrics_listen: str | None = None
    #: when set, /metrics answers only requests with ``Authorization: Bearer <this token>``
    metrics_token: SecretStr | None = None
    #: a read replica for analytics, exports and console lists (unset: the primary)
    database_read_url: str | None = None

    @field_validator("metrics_listen")
    @classmethod
    def _check_metrics_listen(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        host, sep, port = value.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("expected host:port, e.g. 0.0.0.0:9100")
        return value.strip()

    @field_validator("database_read_url")
    @classmethod
    def _check_read_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            backend = make_url(value.strip()).get_backend_name()
        except ArgumentError as e:
            raise ValueError("not a database URL") from e
        if backend != "postgresql":
            raise ValueError("a read replica is a postgresql URL")
        return value.strip()

    # --- AI sessions (docs/ai-sessions.md) ------------------------------------------------------
    #: how a mode's result is asked for: json_schema | json_object | off (the prompt only)
    llm_structured_output: Literal["json_schema", "json_object", "off"] = "json_schema"
    #: max_tokens of the final, structured answer of a mode
    ai_result_max_tokens: int = Field(default=1200, ge=64, le=16000)
    # --- automations (docs/automations.md) ------------------------------------------------
    #: the YAML file of automations; unset: none run
    automations_file: Path | None = None
    #: messages per second automations may send (behind replies, within the bot's budget)
    automations_rate: float = Field(default=25.0, gt=0, le=1000)
    #: due runs claimed at once (also at most rate × lease / 4)
    automations_batch: int = Field(default=200, ge=1, le=10_000)
    #: runs one worker processes at once
    automations_concurrency: int = Field(default=50, ge=1, le=1000)
    #: a worker that dies loses its claimed runs after this long
    automations_lease_seconds: float = Field(default=60.0, gt=0, le=3600)
    #: how often the worker looks for new events and due runs
    automations_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    #: PostgreSQL: how long a hole in the events' ids is waited for (a transaction still
    #: committing) before it is taken for a rolled-back one
    automations_event_lag_seconds: float = Field(default=2.0, ge=0, le=300)
    #: run automations inside `relove run` too (a separate `relove worker` can run them)
    automations_in_bot: bool = True
    #: the time zone of users without a valid markers.tz (IANA name)
    default_tz: str = "UTC"
    #: no automation message in these local hours, e.g. 22-9 (sends wait until they end)
    quiet_hours: str | None = None

    @field_validator("default_tz")
    @classmethod
    def _check_default_tz(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown time zone {value!r} (an IANA name: Europe/Moscow)") from e
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _check_quiet_hours(cls, value: str | None) -> str | None:
        quiet_range(value)
        return value

    # --- webhooks (docs/webhooks.md) --------------------------------------------------------
    #: deliver webhooks from `relove worker` and `relove run`
    webhooks_enabled: bool = True
    #: allow endpoints on loopback / private / link-local addresses (local development, tests)
    webhooks_allow_private: bool = False
    #: seconds a receiver has to answer one POST
    webhooks_timeout: float = Field(default=15.0, gt=0, le=300)
    #: POSTs in flight per worker
    webhooks_concurrency: int = Field(default=64, ge=1, le=10_000)
    #: POSTs in flight per endpoint (and worker)
    webhooks_endpoint_concurrency: int = Field(default=16, ge=1, le=10_000)
    #: an endpoint failing this long without one success is disabled (owners told in the bot)
    webhooks_disable_after_days: float = Field(default=5.0, gt=0, le=365)
    #: hours the old secret still signs (a second signature) after `rotate-secret`
    webhooks_rotation_hours: float = Field(default=24.0, ge=0, le=24 * 30)
    #: seconds between polls of an idle worker
    webhooks_poll_seconds: float = Field(default=0.2, gt=0, le=60)
    #: seconds after which a hole in the event ids is given up even if an old transaction still
    #: runs on PostgreSQL (see docs/webhooks.md, Delivery)
    webhooks_gap_max_seconds: float = Field(default=300.0, ge=1, le=86400)

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


def quiet_range(value: str | None) -> tuple[int, int] | None:
    """``"22-9"`` → (22, 9): quiet from 22:00 to 09:00 local time; None when unset."""
    if value is None or not value.strip():
        return None
    m = re.fullmatch(r"\s*([01]?\d|2[0-3])\s*-\s*([01]?\d|2[0-3])\s*", value)
    if not m or m.group(1) == m.group(2):
        raise ValueError(f"quiet hours {value!r}: expected START-END hours like 22-9")
    return int(m.group(1)), int(m.group(2))


def load_settings(**overrides: Any) -> Settings:
    """Build settings or raise :class:`ConfigError` with one line naming the bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as e:
        err = e.errors()[0]
        name = "RELOVE_" + "_".join(str(p) for p in err["loc"]).upper() if err["loc"] else "?"
        message = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{name}: {message}") from None
