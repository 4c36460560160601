"""The product's Prometheus collectors (prometheus-client, the process's default registry).

The rooms call these directly (``metrics.UPDATES_RECEIVED.inc(n)``): instrumentation stays one
line at the place where the thing happens. Every name is listed in docs/operations.md. This
module imports nothing of the product (the transport, ``relove.telegram``, uses it).

Each process exposes its own counters (``/metrics`` of `relove serve`, or of `relove run` and
`relove worker` at ``RELOVE_METRICS_LISTEN``); Prometheus adds them up across instances.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

#: latency buckets (seconds) for calls that take milliseconds to a minute
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_BATCH = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)

# --- updates (relove.bot.ingest) ----------------------------------------------------------------
UPDATES_RECEIVED = Counter(
    "relove_updates_received", "Updates taken into the pipeline (polling pages or the inbox).")
UPDATES_PROCESSED = Counter(
    "relove_updates_processed",
    "Updates finished, by outcome: handled, failed (a bug or bad data), dropped (database "
    "unavailable longer than RELOVE_DB_OUTAGE_GRACE).", ["outcome"])
UPDATES_PENDING = Gauge("relove_updates_pending", "Updates accepted and not finished yet.")
TOUCH_BATCH = Histogram(
    "relove_touch_batch_size", "Users touched in one batch (one upsert).", buckets=_BATCH)
TOUCH_SECONDS = Histogram(
    "relove_touch_seconds", "Time to touch one batch of users.", buckets=_SECONDS)

# --- webhook inbox (relove.bot.inbox) ------------------------------------------------------------
INBOX_POSTS = Counter(
    "relove_inbox_posts",
    "Telegram's webhook posts to this instance, by outcome: recorded (new update), duplicate "
    "(a redelivery), unauthorized (401), rejected (400/413), unavailable (503).", ["outcome"])
INBOX_PENDING = Gauge(
    "relove_inbox_pending",
    "Updates in the shared inbox not processed yet, all instances (read at scrape time).")
INBOX_OLDEST_SECONDS = Gauge(
    "relove_inbox_oldest_age_seconds",
    "Age of the oldest unprocessed update in the shared inbox, 0 when none (read at scrape).")
INBOX_REPLAYED = Counter(
    "relove_inbox_replayed",
    "Updates taken over from a dead instance after their touch (run again without events).")
INBOX_LAPSED = Counter(
    "relove_inbox_lapsed",
    "Lanes taken from this instance while it worked on them (its lease ran out).")

# --- Telegram (relove.telegram) ------------------------------------------------------------------
TELEGRAM_SENDS = Counter(
    "relove_telegram_sends",
    "Message-sending Bot API calls, by outcome (sent, blocked, failed, retry_after, transient, "
    "unknown) and path (bot: replies over aiogram; lean: workers' client).",
    ["outcome", "path"])
TELEGRAM_429 = Counter(
    "relove_telegram_retry_after", "Bot API 429 answers (every sender of the bot then pauses).")
LIMITER_WAITS = Counter(
    "relove_telegram_limiter_waits", "Times a message waited for the rate limiter.")
LIMITER_WAIT_SECONDS = Counter(
    "relove_telegram_limiter_wait_seconds", "Seconds messages spent waiting for the limiter.")

# --- broadcasts (relove.broadcasts) --------------------------------------------------------------
BROADCAST_DELIVERIES = Counter(
    "relove_broadcast_deliveries",
    "Broadcast deliveries settled, by status (sent, blocked, failed, unknown).", ["status"])
BROADCASTS_RUNNING = Gauge(
    "relove_broadcasts_running", "Broadcasts this process is sending now.")

BROADCAST_PENDING = Gauge(
    "relove_broadcast_pending",
    "Deliveries of running broadcasts still to send, all workers (read at scrape time).")

# --- automations (relove.automations) -----------------------------------------------------------
AUTOMATION_ENTERED = Counter(
    "relove_automation_entered", "Users entered into an automation (runs started).",
    ["automation"])
AUTOMATION_STEPS = Counter(
    "relove_automation_steps", "Automation steps done, by automation and step kind.",
    ["automation", "kind"])
AUTOMATION_COMPLETED = Counter(
    "relove_automation_completed", "Automation runs that reached their end.", ["automation"])
AUTOMATION_STOPPED = Counter(
    "relove_automation_stopped",
    "Automation runs stopped early (stop_when, the user blocked the bot, a removed step).",
    ["automation"])
AUTOMATION_DUE = Gauge(
    "relove_automation_runs_due",
    "Automation runs due now and not yet taken, all workers (read at scrape time).")

# --- outgoing webhooks (relove.webhooks) --------------------------------------------------------
WEBHOOK_ATTEMPTS = Counter(
    "relove_webhook_attempts",
    "Outgoing webhook delivery attempts, by outcome: delivered, retry (failed, tried again "
    "later), failed (given up).", ["outcome"])
WEBHOOK_SECONDS = Histogram(
    "relove_webhook_attempt_seconds", "Outgoing webhook attempt latency.", buckets=_SECONDS)

# --- conversation (relove.conversation) ---------------------------------------------------------
LLM_CALLS = Counter(
    "relove_llm_calls", "LLM calls made, by kind (reply, summary).", ["kind"])
LLM_ERRORS = Counter(
    "relove_llm_errors", "LLM calls that failed (timeout, provider error), by kind.", ["kind"])
LLM_SECONDS = Histogram(
    "relove_llm_seconds", "LLM call latency, by kind.", ["kind"], buckets=_SECONDS)
LLM_TOKENS = Counter(
    "relove_llm_tokens", "Tokens the provider reported, by type (prompt, completion).", ["type"])
LLM_REFUSED = Counter(
    "relove_llm_refused",
    "LLM calls refused before they were made, by reason (rate, daily, busy).", ["reason"])

# --- HTTP API (relove.api) ------------------------------------------------------------------------
API_REQUESTS = Counter(
    "relove_api_requests", "HTTP requests to `relove serve`, by method and status code.",
    ["method", "status"])
API_SECONDS = Histogram(
    "relove_api_request_seconds", "HTTP request latency of `relove serve`.", buckets=_SECONDS)


def exposition() -> tuple[bytes, str]:
    """The text exposition of every collector of this process, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


__all__ = [
    "API_REQUESTS", "API_SECONDS", "AUTOMATION_COMPLETED", "AUTOMATION_DUE", "AUTOMATION_ENTERED",
    "AUTOMATION_STEPS", "AUTOMATION_STOPPED", "BROADCASTS_RUNNING", "BROADCAST_DELIVERIES",
    "BROADCAST_PENDING", "INBOX_LAPSED", "INBOX_OLDEST_SECONDS", "INBOX_PENDING", "INBOX_POSTS",
    "INBOX_REPLAYED", "LIMITER_WAITS",
    "LIMITER_WAIT_SECONDS", "LLM_CALLS", "LLM_ERRORS", "LLM_REFUSED", "LLM_SECONDS", "LLM_TOKENS",
    "TELEGRAM_429", "TELEGRAM_SENDS", "TOUCH_BATCH", "TOUCH_SECONDS", "UPDATES_PENDING",
    "UPDATES_PROCESSED", "UPDATES_RECEIVED", "WEBHOOK_ATTEMPTS", "WEBHOOK_SECONDS", "exposition",
]
