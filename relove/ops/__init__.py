"""Operations: health and readiness probes, Prometheus metrics, structured logs.

* :mod:`.metrics` — the collectors (prometheus-client); the rooms call them. It imports nothing
  of the product, so the transport (``relove.telegram``) may use it.
* :mod:`.logs` — ``RELOVE_LOG_FORMAT=json`` and the context (update, user, broadcast) that every
  log line carries. Imports nothing of the product either.
* :mod:`.health` — ``/healthz`` and ``/readyz`` checks (database, Redis, schema at head).
* :mod:`.server` — the small HTTP server of `relove run` (polling) and `relove worker`
  (``RELOVE_METRICS_LISTEN``); :mod:`.routes` — the same endpoints on `relove serve`.

See docs/operations.md.
"""
