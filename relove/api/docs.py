"""The offline API docs page (Swagger UI served from the package, never a CDN)."""

from __future__ import annotations

from html import escape

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from relove.api.vendor import SWAGGER_CSS, SWAGGER_JS


def docs_router(prefix: str) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    static = f"{prefix}/static"
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>relove API v1</title>
<link rel="stylesheet" href="{escape(static)}/vendor/{escape(SWAGGER_CSS)}">
</head>
<body>
<div id="swagger-ui" data-spec="{escape(prefix)}/openapi.json"></div>
<script src="{escape(static)}/vendor/{escape(SWAGGER_JS)}"></script>
<script src="{escape(static)}/docs.js"></script>
</body>
</html>
"""

    @router.get(f"{prefix}/docs", response_class=HTMLResponse)
    async def docs() -> HTMLResponse:
        return HTMLResponse(page)

    return router
