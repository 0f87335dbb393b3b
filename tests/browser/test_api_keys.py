"""The dashboard on a service with API keys: each view asks for a key and shows nothing
without one, works once one is given, and says so when a key is refused."""

from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import XOR_40, OfflinePage, trained_job
from tests.helpers import Server, running_service

KEY = "dashboard-k3y-0a1b2c3d"
READ_KEY = "dashboard-read-k3y-4e5f"
MODEL = "keyed-xor"
ASKED = "This service needs an API key. Enter one to continue."
REFUSED = "The service refused this API key. Enter another one."


@pytest.fixture(scope="module")
def keyed_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("keyed-dashboard")
    keys = {"BACKPROP_API_KEYS": f"{KEY},{READ_KEY}:read"}
    with running_service(
        f"sqlite:///{folder / 'backprop.db'}", folder / "serve.log", 1, environment=keys
    ) as server:
        yield server


@pytest.fixture(scope="module")
def job(keyed_service: Server) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx2.Client(base_url=keyed_service.base_url, headers=headers) as client:
        dataset = client.post("/v1/datasets", json=XOR_40).raise_for_status().json()
        return trained_job(client, dataset["id"], training={}, model_name=MODEL)


def key_dialog(page: Page) -> Locator:
    return page.get_by_role("dialog", name="API key")


def enter_key(page: Page, key: str) -> None:
    dialog = key_dialog(page)
    expect(dialog).to_be_visible()
    dialog.get_by_label("Key", exact=True).fill(key)
    dialog.get_by_role("button", name="Use key").click()


def job_box(page: Page, job: dict[str, Any]) -> Any:
    return page.get_by_role("checkbox", name=f"{MODEL} {job['id'][:8]}", exact=False)


@pytest.mark.parametrize("view", ["compare", "models", f"models/{MODEL}", "trace"])
def test_without_a_key_a_view_asks_for_one_and_shows_no_data(
    keyed_service: Server,
    open_page: Callable[[Server], OfflinePage],
    job: dict[str, Any],
    view: str,
) -> None:
    offline = open_page(keyed_service)
    page = offline.page
    page.goto(f"/#/{view}")
    expect(page.get_by_role("alert").filter(has_text="API key")).to_have_text(ASKED)
    # The dialog says why it opened: the notice bar is behind it.
    expect(key_dialog(page)).to_have_accessible_description(ASKED)
    expect(page.get_by_label("Key", exact=True)).to_be_focused()
    # Read from the page's markup: with the dialog open, the rest of the page is inert and
    # hidden from role queries, which would find nothing either way.
    view_root = page.locator("#view")
    expect(view_root.locator("table, input[type=checkbox]")).to_have_count(0)
    expect(view_root).not_to_contain_text(MODEL)
    expect(view_root).not_to_contain_text(job["id"][:8])
    if view == "compare":
        offline.screenshot("api-key-prompt")


def test_with_the_key_every_view_shows_its_data(
    keyed_service: Server, open_page: Callable[[Server], OfflinePage], job: dict[str, Any]
) -> None:
    page = open_page(keyed_service).page
    page.goto("/#/compare")
    enter_key(page, KEY)
    expect(job_box(page, job)).to_be_visible()
    expect(key_dialog(page)).to_be_hidden()
    expect(page.get_by_role("alert").filter(has_text="API key")).to_have_count(0)
    job_box(page, job).check()
    expect(page.locator("#compare-chart")).to_have_attribute("data-points", "20")

    # Kept for the tab: a reload does not ask again.
    page.reload()
    expect(job_box(page, job)).to_be_checked()

    page.get_by_role("link", name="Models", exact=True).click()
    page.get_by_role("link", name=MODEL, exact=True).click()
    page.get_by_role("button", name="Predict").click()
    expect(page.get_by_role("table", name=f"Answered by {MODEL} v1")).to_be_visible()
    panel = page.get_by_role("region", name="Aliases")
    panel.get_by_label("Alias", exact=True).fill("production")
    panel.get_by_role("button", name="Set alias").click()
    expect(panel.get_by_role("row").filter(has_text="production")).to_contain_text("v1")

    page.get_by_role("link", name="Trace", exact=True).click()
    output = page.get_by_role("row").filter(
        has=page.get_by_role("rowheader", name="Output", exact=True)
    )
    expect(output).to_contain_text("[0.06257453]")
    expect(key_dialog(page)).to_be_hidden()


def test_a_wrong_key_is_refused_with_a_message(
    keyed_service: Server, open_page: Callable[[Server], OfflinePage], job: dict[str, Any]
) -> None:
    offline = open_page(keyed_service)
    page = offline.page
    page.goto("/#/compare")
    enter_key(page, "not-the-key")
    expect(page.get_by_role("alert").filter(has_text="API key")).to_have_text(REFUSED)
    expect(key_dialog(page)).to_have_accessible_description(REFUSED)
    expect(page.locator("#view")).not_to_contain_text(job["id"][:8])
    offline.screenshot("api-key-refused")
    enter_key(page, KEY)
    expect(job_box(page, job)).to_be_visible()


def test_a_read_only_key_reads_and_is_told_what_it_may_not_do(
    keyed_service: Server, open_page: Callable[[Server], OfflinePage], job: dict[str, Any]
) -> None:
    page = open_page(keyed_service).page
    page.goto(f"/#/models/{MODEL}")
    enter_key(page, READ_KEY)
    # Predicting changes nothing: a read-only key may.
    page.get_by_role("button", name="Predict").click()
    expect(page.get_by_role("table", name=f"Answered by {MODEL} v1")).to_be_visible()
    panel = page.get_by_role("region", name="Aliases")
    panel.get_by_label("Alias", exact=True).fill("staging")
    panel.get_by_role("button", name="Set alias").click()
    expect(page.get_by_role("alert").filter(has_text="may not")).to_contain_text(
        "This key may not do that: this API key may only read"
    )
    # Not a key that is missing or wrong: no prompt for another.
    expect(key_dialog(page)).to_be_hidden()
    expect(panel.get_by_role("row").filter(has_text="staging")).to_have_count(0)
