"""The dashboard: one HTML page at `/` and the static files it loads (its own ES modules
and the vendored libraries), all shipped in `service/api/static`. The page reads and
writes only through the public API, so it needs no routes of its own beyond these."""

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PREFIX = "/static/"
# The page and its assets hold no data: they load without a key, and the page asks for
# one when the API answers 401.
OPEN_PATHS = frozenset({"/"})

router = APIRouter(include_in_schema=False)


@router.get("/")
async def dashboard() -> FileResponse:
    # no-cache: a new release's page is picked up at once (it is revalidated, not refetched).
    return FileResponse(
        STATIC_DIR / "dashboard" / "index.html", headers={"Cache-Control": "no-cache"}
    )


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount(STATIC_PREFIX.rstrip("/"), StaticFiles(directory=STATIC_DIR), name="static")
