"""What the pages load, all served by TallyHub itself so that an air-gapped install works:
our own CSS and scripts (`static/`, and each page's script beside its template in
`pages/`), plotly.min.js from the plotly package, and Swagger UI's files from fastapi-offline
(which bundles swagger-ui-dist 5, for OpenAPI 3.1) for `/docs`. (ReDoc is left out: its
page asks redocly's CDN for a logo.) No CDN is ever asked."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import fastapi_offline
import plotly
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from starlette.applications import Starlette
from starlette.middleware.gzip import GZipMiddleware
from starlette.routing import Route
from starlette.staticfiles import StaticFiles

from tallyhub.core.errors import NotFound

_HERE = Path(__file__).parent
PAGES_DIR = _HERE / "pages"
PLOTLY_JS = Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))
# Versioned URLs: a new release is a new URL, so the files can be cached for good.
_PLOTLY_FILE = f"plotly-{plotly.__version__}.min.js"
PLOTLY_URL = f"/assets/vendor/js/{_PLOTLY_FILE}"
DOCS_FILES = Path(fastapi_offline.__file__).parent / "static"
DOCS_URL = "/assets/vendor/docs"
_FOREVER = {"Cache-Control": "public, max-age=31536000, immutable"}

router = APIRouter(include_in_schema=False)


async def _plotly_js(request: Request) -> FileResponse:
    return FileResponse(PLOTLY_JS, media_type="text/javascript", headers=_FOREVER)


@router.get("/assets/pages/{name}.js")
async def page_script(name: str) -> FileResponse:
    """A page's script, which lives beside its template."""
    path = PAGES_DIR / f"{name}.js"
    if not name.replace("_", "").isalnum() or not path.is_file():
        raise NotFound(f"no page script {name}.js")
    return FileResponse(path, media_type="text/javascript", headers={"Cache-Control": "no-cache"})


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="TallyHub API",
        swagger_js_url=f"{DOCS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{DOCS_URL}/swagger-ui.css",
        swagger_favicon_url="/assets/favicon.svg",
    )


def install(app: FastAPI) -> None:
    """Mount the files and routes above (the app is made with `docs_url=None`)."""
    app.include_router(router)
    # Compressed: plotly.min.js is 4.6 MB as it is, ~1.4 MB gzipped.
    scripts = Starlette(routes=[Route(f"/{_PLOTLY_FILE}", _plotly_js)])
    app.mount("/assets/vendor/js", GZipMiddleware(scripts), name="vendor-js")
    app.mount(DOCS_URL, GZipMiddleware(StaticFiles(directory=DOCS_FILES)), name="docs-files")
    app.mount("/assets", StaticFiles(directory=_HERE / "static"), name="assets")
