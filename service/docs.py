"""The API's documentation pages, served from files shipped in Python packages, so they work on a
machine without internet access (FastAPI's default /docs and /redoc pull Swagger UI and ReDoc
from a CDN and stay blank offline).

Swagger UI comes from the `swagger-ui-bundle` package and is served under /docs/static.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
STATIC_URL = "/docs/static"


def install(app: FastAPI) -> None:
    """Add /docs (Swagger UI from local files); the app must be built with docs_url=None."""
    import swagger_ui_bundle  # the assets; a dependency of the service

    app.mount(STATIC_URL, StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs")

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API",
            oauth2_redirect_url=f"{DOCS_URL}/oauth2-redirect",
            swagger_js_url=f"{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC_URL}/favicon-32x32.png",
        )

    @app.get(f"{DOCS_URL}/oauth2-redirect", include_in_schema=False)
    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
