"""The API docs pages, `/docs` (Swagger UI) and `/redoc`, on the JavaScript, CSS and icon
vendored in `static/vendor` (see its README): FastAPI's own pages load them from public
CDNs, and stay blank on a machine without internet."""

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse

from service.api.dashboard import STATIC_PREFIX

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
# Open with API keys configured: the pages hold no data (the schema is open too).
OPEN_PATHS = frozenset({DOCS_URL, REDOC_URL, OAUTH2_REDIRECT_URL})
VENDOR = STATIC_PREFIX + "vendor/"
# The browser may fetch nothing from anywhere but the service: ReDoc's bundle, for one,
# loads its maker's logo from a CDN. The pages' inline scripts and the styles the UIs
# inject are allowed; ReDoc runs its search in a worker made from a blob.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
    "connect-src 'self'; frame-ancestors 'self'"
)
FAVICON = VENDOR + "swagger-ui/favicon-32x32.png"

router = APIRouter(include_in_schema=False)


def _root(request: Request) -> str:
    """The path the app is mounted at behind a proxy (`root_path`), as FastAPI's own pages
    prefix their URLs with it."""
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


def _schema_url(request: Request) -> str:
    url: str = request.app.openapi_url
    return url


@router.get(DOCS_URL)
async def swagger_ui(request: Request) -> HTMLResponse:
    root = _root(request)
    page = get_swagger_ui_html(
        openapi_url=root + _schema_url(request),
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=root + VENDOR + "swagger-ui/swagger-ui-bundle.js",
        swagger_css_url=root + VENDOR + "swagger-ui/swagger-ui.css",
        swagger_favicon_url=root + FAVICON,
        oauth2_redirect_url=root + OAUTH2_REDIRECT_URL,
        # No badge from the public validator, which would send it the schema.
        swagger_ui_parameters={"validatorUrl": None},
    )
    return _self_only(page)


@router.get(OAUTH2_REDIRECT_URL)
async def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get(REDOC_URL)
async def redoc(request: Request) -> HTMLResponse:
    root = _root(request)
    page = get_redoc_html(
        openapi_url=root + _schema_url(request),
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=root + VENDOR + "redoc/redoc.standalone.js",
        redoc_favicon_url=root + FAVICON,
        with_google_fonts=False,
    )
    return _self_only(page)


def _self_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return page


def install(app: FastAPI) -> None:
    """Serve the pages; build the app with `docs_url=None, redoc_url=None`, so FastAPI does
    not add its own."""
    app.include_router(router)
