"""The REST API v1 (FastAPI): routes per resource in :mod:`relove.api.routes`, calling the same
services as the CLI and the bot. Build it with :func:`relove.api.app.create_app`."""
