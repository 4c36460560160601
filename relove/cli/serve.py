"""`relove serve`: the REST API (and the console) on uvicorn."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from relove.cli.common import open_db, run, settings

log = logging.getLogger(__name__)


def serve(
    host: Annotated[
        str | None, typer.Option("--host", help="Address to listen on (RELOVE_SERVE_HOST).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", min=0, max=65535, help="Port (RELOVE_SERVE_PORT, 8080)."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, max=64, help="Worker processes (RELOVE_SERVE_WORKERS)."),
    ] = None,
    print_openapi: Annotated[
        bool,
        typer.Option("--print-openapi", help="Print the API's OpenAPI document and exit "
                     "(relove serve --print-openapi > docs/openapi.json)."),
    ] = False,
) -> None:
    """Serve the REST API under /api/v1 (docs at /api/v1/docs) and the console at /."""
    if print_openapi:
        import sys

        from relove.api.openapi import document_text

        sys.stdout.write(document_text())
        return
    import uvicorn

    s = settings()

    async def _check_schema() -> None:  # SQLite upgrades itself; PostgreSQL must be current
        async with open_db(s):
            pass

    run(_check_schema())
    host = host or s.serve_host
    port = s.serve_port if port is None else port
    workers = workers or s.serve_workers
    log.info("serving the console on http://%s:%s/ and the API under /api/v1 (%s worker(s))",
             host, port, workers)
    uvicorn.run(
        "relove.api.server:create_server_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=s.log_level.lower(),
        proxy_headers=True,
        server_header=False,
        access_log=s.serve_access_log,
        # JSON logs: uvicorn's loggers pass their lines to ours (relove.ops.logs)
        log_config=None if s.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
    )
