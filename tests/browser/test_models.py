"""The models views: the registry's models, a model's versions, setting, moving and
deleting its aliases, and predicting raw rows with it."""

from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import XOR_40, OfflinePage, fits_the_width, trained_job
from tests.helpers import Server

MODEL = "xor-pick"


@pytest.fixture(scope="module")
def client(service: Server) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=service.base_url) as http:
        yield http


@pytest.fixture(scope="module")
def versions(client: httpx2.Client) -> list[dict[str, Any]]:
    """Two versions of one model, from two jobs."""
    dataset = client.post("/v1/datasets", json=XOR_40).raise_for_status().json()
    return [
        trained_job(client, dataset["id"], training={"learning_rate": rate}, model_name=MODEL)
        for rate in (0.1, 0.3)
    ]


def aliases(client: httpx2.Client) -> dict[str, int]:
    found: dict[str, int] = client.get(f"/v1/models/{MODEL}").raise_for_status().json()["aliases"]
    return found


def open_model(page: Page) -> None:
    page.goto(f"/#/models/{MODEL}")
    expect(page.get_by_role("heading", name=MODEL)).to_be_visible()


def test_the_model_list_shows_each_model_with_its_latest_version(
    service: Server,
    open_page: Callable[[Server], OfflinePage],
    versions: list[dict[str, Any]],
    client: httpx2.Client,
) -> None:
    client.put(f"/v1/models/{MODEL}/aliases/listed", json={"version": 1}).raise_for_status()
    offline = open_page(service)
    page = offline.page
    page.goto("/#/models")
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=MODEL))
    expect(row).to_contain_text("v2")
    expect(row.get_by_role("listitem")).to_contain_text(["listed → v1"])
    offline.screenshot("models")
    page.get_by_role("link", name=MODEL).click()
    versions_table = page.get_by_role("region", name="Versions")
    expect(versions_table.get_by_role("row")).to_have_count(3)
    for job in versions:
        version_row = versions_table.get_by_role("row").filter(has_text=f"v{job['model_version']}")
        expect(version_row.get_by_role("link", name=f"job {job['id'][:8]}")).to_be_visible()
        expect(version_row).to_contain_text(f"{job['loss']:.4g}")


def test_a_prediction_from_the_form_shows_the_apis_answer(
    service: Server,
    open_page: Callable[[Server], OfflinePage],
    versions: list[dict[str, Any]],
    client: httpx2.Client,
) -> None:
    rows = [[1.0, 1.0], [-1.0, 1.0], [0.5, -0.25]]
    expected = (
        client.post(f"/v1/models/{MODEL}/predict", json={"inputs": rows}).raise_for_status().json()
    )
    offline = open_page(service)
    page = offline.page
    open_model(page)
    page.get_by_label("Input rows").fill("1, 1\n-1, 1\n\n0.5 -0.25\n")
    page.get_by_role("button", name="Predict").click()
    table = page.get_by_role("table", name=f"Answered by {MODEL} v2")
    expect(table.get_by_role("columnheader")).to_have_text(
        ["Row", "Input", "Label", "P(0)", "P(1)"]
    )
    body = table.get_by_role("row").filter(has=page.get_by_role("cell"))
    expect(body).to_have_count(3)
    for index, row in enumerate(rows):
        expect(body.nth(index).get_by_role("cell")).to_have_text(
            [
                ", ".join(f"{value:g}" for value in row),
                str(expected["labels"][index]),
                *(f"{p:.4f}" for p in expected["probabilities"][index]),
            ]
        )
    offline.screenshot("model-predict")


def test_an_invalid_row_is_reported_next_to_the_rows(
    service: Server, open_page: Callable[[Server], OfflinePage], versions: list[dict[str, Any]]
) -> None:
    page = open_page(service).page
    open_model(page)
    rows = page.get_by_label("Input rows")
    # Too wide for the model: the API's own message, under the field.
    rows.fill("1, 2, 3\n4, 5, 6")
    page.get_by_role("button", name="Predict").click()
    expect(rows).to_have_accessible_description("rows must have 2 values, got 3")
    expect(rows).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("table", name=f"Answered by {MODEL} v2")).to_have_count(0)
    # Not a number: caught before it is sent, with its line.
    rows.fill("1, 1\n1, one")
    rows.press("Tab")
    page.get_by_role("button", name="Predict").press("Enter")
    expect(rows).to_have_accessible_description('Line 2: "one" is not a number.')
    rows.fill("1, 1\n\n1, 2, 3")
    page.get_by_role("button", name="Predict").click()
    expect(rows).to_have_accessible_description(
        "Line 3 has 3 values, the first row 2: every row needs as many."
    )
    # Fixed, the error goes away and the answer comes.
    rows.fill("[[1, 1]]")
    page.get_by_role("button", name="Predict").click()
    expect(page.get_by_role("table", name=f"Answered by {MODEL} v2")).to_be_visible()
    expect(rows).to_have_accessible_description("")


def test_an_alias_set_and_moved_from_the_page_is_the_apis(
    service: Server,
    open_page: Callable[[Server], OfflinePage],
    versions: list[dict[str, Any]],
    client: httpx2.Client,
) -> None:
    page = open_page(service).page
    open_model(page)
    panel = page.get_by_role("region", name="Aliases")
    panel.get_by_label("Alias", exact=True).fill("production")
    panel.get_by_label("Version").select_option("1")
    panel.get_by_role("button", name="Set alias").click()
    expect(page.get_by_role("alert").filter(has_text="Alias production")).to_have_text(
        "Alias production now points at v1."
    )
    assert aliases(client)["production"] == 1
    expect(panel.get_by_role("row").filter(has_text="production")).to_contain_text("v1")

    # Predicting with the alias uses its version.
    page.get_by_label("Predict with").select_option(label="production (v1)")
    page.get_by_role("button", name="Predict").click()
    expect(page.get_by_role("table", name=f"Answered by {MODEL} v1")).to_be_visible()

    # Moved by keyboard: "Move" fills the form and focuses the version.
    panel.get_by_role("button", name="Move alias production").press("Enter")
    expect(panel.get_by_label("Version")).to_be_focused()
    panel.get_by_label("Version").select_option("2")
    panel.get_by_label("Alias", exact=True).press("Enter")
    expect(page.get_by_role("alert").filter(has_text="Alias production")).to_have_text(
        "Alias production moved from v1 to v2."
    )
    assert aliases(client)["production"] == 2
    versions_panel = page.get_by_role("region", name="Versions")
    expect(versions_panel.get_by_role("row").filter(has_text="production → v2")).to_contain_text(
        "v2"
    )

    panel.get_by_role("button", name="Delete alias production").click()
    expect(page.get_by_role("alert").filter(has_text="Alias production")).to_have_text(
        "Alias production deleted."
    )
    assert "production" not in aliases(client)
    expect(panel.get_by_role("row").filter(has_text="production")).to_have_count(0)


def test_an_alias_name_the_api_refuses_is_reported_next_to_it(
    service: Server,
    open_page: Callable[[Server], OfflinePage],
    versions: list[dict[str, Any]],
    client: httpx2.Client,
) -> None:
    page = open_page(service).page
    open_model(page)
    panel = page.get_by_role("region", name="Aliases")
    name = panel.get_by_label("Alias", exact=True)
    name.fill("not ok!")
    panel.get_by_role("button", name="Set alias").click()
    expect(name).to_have_accessible_description(
        "String should match pattern '^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$'"
    )
    assert aliases(client).keys() <= {"listed"}


def test_the_model_page_fits_a_narrow_screen(
    service: Server, open_page: Callable[[Server], OfflinePage], versions: list[dict[str, Any]]
) -> None:
    offline = open_page(service)
    page = offline.page
    page.set_viewport_size({"width": 375, "height": 800})
    open_model(page)
    page.get_by_role("button", name="Predict").click()
    expect(page.get_by_role("table", name=f"Answered by {MODEL} v2")).to_be_visible()
    assert fits_the_width(page)
    offline.screenshot("model-narrow")


def test_a_model_that_does_not_exist_says_so(
    service: Server, open_page: Callable[[Server], OfflinePage]
) -> None:
    page = open_page(service).page
    page.goto("/#/models/no-such-model")
    expect(page.get_by_role("heading", name="No such model")).to_be_visible()
    page.get_by_role("link", name="See the models there are").click()
    expect(page.get_by_role("heading", name="Models")).to_be_visible()
