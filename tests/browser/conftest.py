"""The dashboard in a real headless Chromium (Debian's `chromium`, driven by Playwright
for Python), against `backprop serve` running as a process of its own.

The network is cut off: every request the page makes to anything but the service is
aborted and recorded, and each test fails if one was attempted. So is a JavaScript error
on the page. Screenshots go to `test-artifacts/screenshots/` (BACKPROP_TEST_ARTIFACTS
names another folder).
"""

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest
from playwright.sync_api import Browser, Page, Playwright, Route, sync_playwright

from tests.helpers import Server, job_finished, running_service

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("BACKPROP_TEST_ARTIFACTS", ROOT / "test-artifacts"))
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    # Chromium's own calls home (component updates, sync, safe browsing lists): without
    # them, any request seen leaving the page is the page's.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_executable() -> str:
    """Debian's Chromium (BACKPROP_TEST_CHROMIUM names another). Missing, it fails the
    tests rather than skipping them: `make test` installs it where it can."""
    path = os.environ.get("BACKPROP_TEST_CHROMIUM") or shutil.which("chromium")
    if not path:
        pytest.fail(
            "the browser tests need Chromium: `apt-get install chromium` "
            "(or set BACKPROP_TEST_CHROMIUM to a Chromium binary)",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(
        executable_path=chromium_executable(), headless=True, args=CHROMIUM_FLAGS
    )
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One service (SQLite, two workers) for a module's tests: the dashboard's data is
    what the tests make through it, and each test makes its own."""
    folder = tmp_path_factory.mktemp("dashboard")
    with running_service(f"sqlite:///{folder / 'backprop.db'}", folder / "serve.log", 2) as server:
        yield server


class OfflinePage:
    """A page whose requests may reach only the service; what else it tried is kept."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.blocked: list[str] = []
        self.errors: list[str] = []
        origin = urlsplit(base_url).netloc

        def guard(route: Route) -> None:
            if urlsplit(route.request.url).netloc == origin:
                route.continue_()
            else:
                self.blocked.append(route.request.url)
                route.abort("internetdisconnected")

        page.route("**/*", guard)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def screenshot(self, name: str) -> Path:
        """Saves the whole page as `<name>.png` among the test artifacts."""
        path = ARTIFACTS / "screenshots" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Callable[[Server], OfflinePage]]:
    """`open_page(server)`: a fresh browser context (no stored key) on `server`, cut off
    from everything else; after the test, nothing else was asked for and no script threw."""
    opened: list[OfflinePage] = []

    def open_on(server: Server) -> OfflinePage:
        context = browser.new_context(
            base_url=server.base_url, viewport={"width": 1280, "height": 900}
        )
        context.set_default_timeout(15_000)
        offline = OfflinePage(context.new_page(), server.base_url)
        opened.append(offline)
        return offline

    yield open_on
    for offline in opened:
        offline.page.context.close()
    for offline in opened:
        assert offline.blocked == [], f"the page asked for more than the service: {offline.blocked}"
        assert offline.errors == [], f"scripts on the page threw: {offline.errors}"


# Small and fast: XOR's 40 points, a 2-4-1 network, 20 epochs (well under a second).
XOR_40 = {"name": "xor-40", "generator": {"kind": "xor", "n_samples": 40}}


def trained_job(
    client: httpx2.Client, dataset_id: str, *, training: dict[str, Any], model_name: str | None
) -> dict[str, Any]:
    """A 2-4-1 tanh job on `dataset_id` with `training`, submitted over HTTP and waited for."""
    job = client.post(
        "/v1/jobs",
        json={
            "dataset_id": dataset_id,
            "model_name": model_name,
            "network": {"layers": [2, 4, 1], "hidden_activation": "tanh"},
            "training": {"epochs": 20, **training},
        },
    ).raise_for_status()
    finished = job_finished(client, job.json()["id"])
    assert finished["status"] == "succeeded", finished
    return finished


def fits_the_width(page: Page) -> bool:
    """Whether the page needs no horizontal scrolling (wide tables and figures scroll in
    their own boxes)."""
    width: bool = page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )
    return width
