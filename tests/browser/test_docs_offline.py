"""The API docs pages render in Chromium with the network cut off: Swagger UI at `/docs`
and ReDoc at `/redoc` load only the service's own (vendored) assets; the fixture fails the
test if they asked anything else for anything, or a script threw.

The pages' Content-Security-Policy lets the browser fetch nothing from elsewhere; what it
blocked is read from the console, so a policy that broke a page would show."""

import re
from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.browser.conftest import OfflinePage
from tests.helpers import Server

# ReDoc's bundle shows its maker's logo from their CDN in the side menu: the one thing
# the policy has to stop (the page shows the "API docs by Redocly" link without it).
REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


def blocked_by_policy(page: Page) -> list[str]:
    """The console's Content Security Policy violations on `page`, as they are logged."""
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return violations


def test_swagger_ui_renders_the_operations_offline(
    service: Server, open_page: Callable[[Server], OfflinePage]
) -> None:
    offline = open_page(service)
    page = offline.page
    violations = blocked_by_policy(page)
    page.goto("/docs")

    create_job = page.get_by_role(
        "button", name=re.compile(r"^POST\s*\/v1\/jobs\s*Submit a training job")
    )
    expect(create_job).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile("Backprop Service"))).to_be_visible()
    # Expanding it renders the operation from the schema: its body, answers, "Try it out".
    create_job.click()
    operation = page.locator("#operations-jobs-create_job")
    expect(operation.get_by_role("button", name="Try it out")).to_be_visible()
    expect(operation.get_by_text("Request body", exact=True)).to_be_visible()
    expect(operation.get_by_text('"dataset_id"').first).to_be_visible()
    offline.screenshot("docs-swagger-ui")
    assert violations == []


def test_redoc_renders_the_operations_offline(
    service: Server, open_page: Callable[[Server], OfflinePage]
) -> None:
    offline = open_page(service)
    page = offline.page
    violations = blocked_by_policy(page)
    page.goto("/redoc")

    title = page.get_by_role("heading", name=re.compile(r"^Backprop Service"), level=1)
    expect(title).to_be_visible()
    expect(page.get_by_role("heading", name="Submit a training job", level=2)).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile("on an N x N grid")).first).to_be_attached()
    offline.screenshot("docs-redoc")
    assert violations and all(REDOCLY_LOGO in violation for violation in violations)
