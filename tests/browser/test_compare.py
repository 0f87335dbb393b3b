"""The compare view: pick jobs, see their loss curves overlaid, their results and the
settings in which they differ; the selection is in the address, so it can be shared."""

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import XOR_40, OfflinePage, fits_the_width, trained_job
from tests.helpers import Server


@pytest.fixture(scope="module")
def client(service: Server) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=service.base_url) as http:
        yield http


@pytest.fixture(scope="module")
def two_jobs(client: httpx2.Client) -> list[dict[str, Any]]:
    """Two runs on the same data that differ in learning rate and validation split."""
    dataset = client.post("/v1/datasets", json=XOR_40).raise_for_status().json()
    return [
        trained_job(
            client,
            dataset["id"],
            training={"learning_rate": 0.1, "validation_split": 0.25},
            model_name="slow-xor",
        ),
        trained_job(client, dataset["id"], training={"learning_rate": 0.5}, model_name="fast-xor"),
    ]


def label(job: dict[str, Any]) -> str:
    return f"{job['model_name']} {job['id'][:8]}"


def shown(value: float) -> str:
    """A number as the page's formatNumber writes one (4 significant digits)."""
    return f"{value:.4g}"


def test_picking_two_jobs_overlays_their_curves_and_tables_them(
    service: Server,
    open_page: Callable[[Server], OfflinePage],
    two_jobs: list[dict[str, Any]],
    client: httpx2.Client,
) -> None:
    slow, fast = two_jobs
    offline = open_page(service)
    page = offline.page
    page.goto("/#/compare")
    expect(page.get_by_text("Pick two or more jobs")).to_be_visible()
    page.get_by_role("checkbox", name=re.compile(slow["id"][:8])).check()
    # By keyboard, as well as by mouse.
    page.get_by_role("checkbox", name=re.compile(fast["id"][:8])).focus()
    page.keyboard.press("Space")

    chart = page.locator("#compare-chart")
    expect(chart).to_have_attribute("data-points", "20")
    legend = chart.locator(".u-legend .u-series .u-label")
    expect(legend).to_have_text(
        ["epoch", f"{label(slow)} · train", f"{label(slow)} · validation", f"{label(fast)} · train"]
    )
    # The selection is in the address, in the order it was made.
    assert page.evaluate("location.hash") == f"#/compare?jobs={slow['id']},{fast['id']}"

    results = page.get_by_role("region", name="Results")
    for job in (slow, fast):
        row = results.get_by_role("row").filter(has_text=label(job))
        expect(row).to_contain_text(shown(job["loss"]))
        expect(row).to_contain_text("20 / 20")
    history = client.get(f"/v1/jobs/{slow['id']}/history").json()["items"]
    slow_row = results.get_by_role("row").filter(has_text=label(slow))
    expect(slow_row).to_contain_text(shown(history[-1]["val_loss"]))

    settings = page.get_by_role("region", name="Settings that differ")
    expect(settings.get_by_role("row").filter(has_text="training.learning_rate")).to_have_text(
        re.compile(r"training\.learning_rate\s*0\.1\s*0\.5")
    )
    expect(settings.get_by_role("row").filter(has_text="training.validation_split")).to_be_visible()
    # Only what differs: both jobs share the optimizer.
    expect(settings.get_by_role("row").filter(has_text="training.optimizer")).to_have_count(0)

    page.get_by_label("Log scale").check()
    expect(chart).to_have_attribute("data-points", "20")
    expect(legend).to_have_count(4)
    offline.screenshot("compare")


def test_a_shared_comparison_opens_with_its_jobs_selected(
    service: Server, open_page: Callable[[Server], OfflinePage], two_jobs: list[dict[str, Any]]
) -> None:
    slow, fast = two_jobs
    missing = "0" * 32
    page = open_page(service).page
    page.goto(f"/#/compare?jobs={fast['id']},{missing},{slow['id']}")
    expect(page.get_by_role("checkbox", name=re.compile(fast["id"][:8]))).to_be_checked()
    expect(page.get_by_role("checkbox", name=re.compile(slow["id"][:8]))).to_be_checked()
    expect(page.get_by_role("alert").filter(has_text="No job")).to_contain_text(missing)
    legend = page.locator("#compare-chart .u-legend .u-series .u-label")
    expect(legend).to_have_text(
        ["epoch", f"{label(fast)} · train", f"{label(slow)} · train", f"{label(slow)} · validation"]
    )
    # The job that does not exist is dropped from the address too.
    assert page.evaluate("location.hash") == f"#/compare?jobs={fast['id']},{slow['id']}"

    page.get_by_label("Filter by model, id or status").fill("fast")
    expect(page.get_by_role("checkbox", name=re.compile(slow["id"][:8]))).to_be_hidden()
    page.get_by_label("Filter by model, id or status").fill("")

    page.get_by_role("checkbox", name=re.compile(fast["id"][:8])).uncheck()
    expect(legend).to_have_count(3)
    expect(page.get_by_role("region", name="Settings that differ")).to_contain_text(
        "Pick another job"
    )
    page.get_by_role("button", name="Clear selection").click()
    expect(page.get_by_text("Pick two or more jobs")).to_be_visible()
    assert page.evaluate("location.hash") == "#/compare"


def test_compare_fits_a_narrow_screen(
    service: Server, open_page: Callable[[Server], OfflinePage], two_jobs: list[dict[str, Any]]
) -> None:
    offline = open_page(service)
    page = offline.page
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(f"/#/compare?jobs={two_jobs[0]['id']},{two_jobs[1]['id']}")
    expect(page.locator("#compare-chart")).to_have_attribute("data-points", "20")
    assert fits_the_width(page)
    offline.screenshot("compare-narrow")


def test_a_running_jobs_curve_grows_while_it_is_compared(
    service: Server,
    open_page: Callable[[Server], OfflinePage],
    two_jobs: list[dict[str, Any]],
    client: httpx2.Client,
) -> None:
    running = (
        client.post(
            "/v1/jobs",
            json={
                "dataset_id": two_jobs[0]["dataset_id"],
                "network": {"layers": [2, 4, 1], "hidden_activation": "tanh"},
                # On NumPy: the compiled engine can finish 20,000 epochs of this net
                # before the page has looked twice.
                "training": {"epochs": 20_000, "engine": "numpy"},
            },
        )
        .raise_for_status()
        .json()
    )
    try:
        page = open_page(service).page
        page.goto(f"/#/compare?jobs={two_jobs[0]['id']},{running['id']}")
        chart = page.locator("#compare-chart")
        # The finished job's 20 epochs are on the chart from the start; more come as the
        # other one trains.
        expect(chart).not_to_have_attribute("data-points", "0")
        first = int(chart.get_attribute("data-points") or 0)
        page.wait_for_function(
            f"Number(document.querySelector('#compare-chart').dataset.points) > {max(first, 20)}"
        )
        expect(page.get_by_role("region", name="Results")).to_contain_text("running")
    finally:
        client.post(f"/v1/jobs/{running['id']}/cancel").raise_for_status()
