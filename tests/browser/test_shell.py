"""The dashboard's shell: served at `/` with its assets, navigable, asking for a key."""

from collections.abc import Callable

import httpx2
from playwright.sync_api import expect

from tests.browser.conftest import OfflinePage
from tests.helpers import Server


def test_root_serves_the_dashboard_page(service: Server) -> None:
    page = httpx2.get(f"{service.base_url}/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "static/dashboard/app.js" in page.text
    chart_library = httpx2.get(f"{service.base_url}/static/vendor/uplot/uPlot.iife.min.js")
    assert chart_library.status_code == 200
    assert "uPlot" in chart_library.text


def test_navigation_reaches_every_section(
    service: Server, open_page: Callable[[Server], OfflinePage]
) -> None:
    offline = open_page(service)
    page = offline.page
    page.goto("/")
    for section in ("Compare", "Models", "Trace", "Jobs"):
        page.get_by_role("link", name=section, exact=True).click()
        expect(page.get_by_role("link", name=section, exact=True)).to_have_attribute(
            "aria-current", "page"
        )
