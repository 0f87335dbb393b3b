"""The Jobs list and the Job page: a job made from the form, its loss curve growing while it
trains (over the event stream, resumed after a drop, or polled when the stream fails), the
API's validation errors next to their fields, the boundary and the network at a snapshot
epoch picked with the slider, the history as a CSV download, cancelling from the list."""

import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from playwright.sync_api import Page, Route, expect

from tests.browser.conftest import ROOT, OfflinePage
from tests.helpers import Server, running_service

OpenPage = Callable[[Server], OfflinePage]
MOONS = {"name": "moons", "generator": {"kind": "moons", "n_samples": 400, "noise": 0.2}}
NETWORK = {"layers": [2, 8, 8, 1], "hidden_activation": "tanh"}
# Set to 1 to refresh the README's screenshot of the job page from this run.
UPDATE_DOCS = os.environ.get("BACKPROP_UPDATE_DOCS_SCREENSHOT") == "1"
KEY = "jobs-page-key"


@pytest.fixture(scope="module")
def keyed_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A service with an API key configured, and one worker."""
    folder = tmp_path_factory.mktemp("keyed")
    url = f"sqlite:///{folder / 'backprop.db'}"
    with running_service(url, folder / "serve.log", 1, {"BACKPROP_API_KEYS": KEY}) as server:
        yield server


def submit_job(
    service: Server,
    headers: dict[str, str] | None = None,
    model_name: str | None = None,
    **training: Any,
) -> dict[str, Any]:
    """A job on a new two-moons dataset, submitted over the API, with a snapshot every 10
    epochs."""
    dataset = httpx2.post(f"{service.base_url}/v1/datasets", json=MOONS, headers=headers)
    assert dataset.status_code == 201, dataset.text
    body = {
        "dataset_id": dataset.json()["id"],
        "model_name": model_name,
        "network": NETWORK,
        "training": {"optimizer": "adam", "learning_rate": 0.02, **training},
        "checkpoint_every": 10,
    }
    job = httpx2.post(f"{service.base_url}/v1/jobs", json=body, headers=headers)
    assert job.status_code == 202, job.text
    result: dict[str, Any] = job.json()
    return result


def chart_points(page: Page, chart: str = "Loss per epoch") -> int:
    return int(page.get_by_role("figure", name=chart).get_attribute("data-points") or 0)


def wait_for_points(page: Page, count: int) -> None:
    """Until the loss chart draws `count` epochs."""
    page.wait_for_function(
        "n => Number(document.getElementById('loss-chart').dataset.points) === n", arg=count
    )


def fill_form(page: Page, fields: dict[str, str]) -> None:
    for label, value in fields.items():
        page.get_by_label(label, exact=True).fill(value)


def test_form_creates_a_job_whose_loss_curve_grows_while_it_trains(
    service: Server, open_page: OpenPage
) -> None:
    offline = open_page(service)
    page = offline.page
    page.goto("/#/jobs")
    expect(page.get_by_role("heading", name="New job")).to_be_visible()
    # The generated two moons of the form's defaults, trained one sample at a time by the
    # NumPy engine for long enough (several seconds) to watch.
    expect(page.get_by_label("Kind", exact=True)).to_have_value("moons")
    fill_form(page, {"Model name": "moons-live", "Epochs": "800", "Batch size": "1"})
    page.locator("summary", has_text="More options").click()
    page.get_by_label("Engine", exact=True).select_option("numpy")
    page.get_by_role("button", name="Start training").click()

    expect(page).to_have_url(re.compile(r"#/jobs/[0-9a-f]{32}$"))
    job_id = page.url.rsplit("/", 1)[1]
    expect(page.get_by_role("heading", name=re.compile("moons-live"))).to_be_visible()
    page.wait_for_function("Number(document.getElementById('loss-chart').dataset.points) > 0")
    first, status = page.evaluate(
        "[Number(document.getElementById('loss-chart').dataset.points),"
        " document.getElementById('job-status').textContent]"
    )
    assert status in {"queued", "running"}, f"the job ended before the first reading ({status})"
    page.wait_for_function(
        "n => Number(document.getElementById('loss-chart').dataset.points) > n", arg=first
    )
    assert chart_points(page) > first
    offline.screenshot("job-page-training")

    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=60_000)
    wait_for_points(page, 800)
    job = httpx2.get(f"{service.base_url}/v1/jobs/{job_id}").json()
    assert job["model_name"] == "moons-live" and job["epochs_total"] == 800
    assert job["spec"]["training"]["batch_size"] == 1


def test_form_shows_the_apis_validation_errors_next_to_their_fields(
    service: Server, open_page: OpenPage
) -> None:
    offline = open_page(service)
    page = offline.page
    page.goto("/#/jobs")
    rate = page.get_by_label("Learning rate", exact=True)
    rate.fill("0")
    page.get_by_role("button", name="Start training").click()
    expect(rate).to_have_attribute("aria-invalid", "true")
    expect(rate).to_have_accessible_description(re.compile("greater than 0"))
    expect(rate).to_be_focused()

    # Layers that do not fit the data: the API's check against the dataset, on its field.
    rate.fill("0.01")
    layers = page.get_by_label("Layers", exact=True)
    layers.fill("3, 8, 1")
    layers.press("Enter")
    expect(layers).to_have_accessible_description(re.compile("input width 3 does not match"))
    expect(rate).not_to_have_attribute("aria-invalid", "true")
    expect(page).to_have_url(re.compile(r"#/jobs$"))
    offline.screenshot("job-form-errors")


def test_snapshot_slider_redraws_the_boundary_and_the_network(
    service: Server, open_page: OpenPage
) -> None:
    job = submit_job(
        service,
        model_name="moons",
        epochs=300,
        batch_size=4,
        learning_rate=0.003,
        validation_split=0.2,
    )
    offline = open_page(service)
    page = offline.page
    page.goto(f"/#/jobs/{job['id']}")
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=30_000)
    slider = page.get_by_label("Snapshot epoch")
    boundary = page.get_by_role("img", name=re.compile("Decision boundary"))
    network = page.get_by_role("img", name=re.compile("^Network 2-8-8-1"))
    # A finished job opens at the weights it ended with.
    expect(slider).to_have_attribute("aria-valuetext", "epoch 300 (final weights)")
    expect(boundary).to_have_attribute("data-epoch", "300")
    expect(network).to_have_attribute("data-epoch", "300")
    wait_for_points(page, 300)
    final_pixels = boundary.evaluate("canvas => canvas.toDataURL()")
    final_network = network.evaluate("picture => picture.innerHTML")
    screenshot = offline.screenshot("job-page")
    if UPDATE_DOCS:
        shutil.copyfile(screenshot, ROOT / "docs" / "dashboard-job.png")

    slider.focus()
    page.keyboard.press("Home")
    expect(slider).to_have_attribute("aria-valuetext", "epoch 10")
    expect(boundary).to_have_attribute("data-epoch", "10")
    expect(network).to_have_attribute("data-epoch", "10")
    assert boundary.evaluate("canvas => canvas.toDataURL()") != final_pixels
    assert network.evaluate("picture => picture.innerHTML") != final_network

    page.keyboard.press("ArrowRight")
    expect(boundary).to_have_attribute("data-epoch", "20")
    page.keyboard.press("End")
    expect(boundary).to_have_attribute("data-epoch", "300")
    assert boundary.evaluate("canvas => canvas.toDataURL()") == final_pixels


def test_history_downloads_as_csv(service: Server, open_page: OpenPage, tmp_path: Path) -> None:
    job = submit_job(service, epochs=30, batch_size=16)
    offline = open_page(service)
    page = offline.page
    page.goto(f"/#/jobs/{job['id']}")
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=30_000)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download history (CSV)").click()
    assert download.value.suggested_filename == f"job-{job['id']}-history.csv"
    saved = tmp_path / "history.csv"
    download.value.save_as(saved)
    lines = saved.read_text().strip().splitlines()
    header = lines[0].split(",")
    assert "epoch" in header and "loss" in header
    epochs = [int(line.split(",")[header.index("epoch")]) for line in lines[1:]]
    assert epochs == list(range(1, 31))


def test_cancel_a_running_job_from_the_list(service: Server, open_page: OpenPage) -> None:
    job = submit_job(service, epochs=50_000, batch_size=1)
    offline = open_page(service)
    page = offline.page
    page.goto("/#/jobs")
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=job["id"][:8]))
    expect(row.get_by_role("cell", name="running")).to_be_visible(timeout=30_000)
    expect(row.get_by_role("progressbar")).to_be_visible()
    row.get_by_role("button", name=re.compile("^Cancel")).click()
    expect(row.get_by_role("cell", name="cancelled")).to_be_visible()
    expect(row.get_by_role("button", name=re.compile("^Cancel"))).to_have_count(0)
    offline.screenshot("jobs-list")
    assert httpx2.get(f"{service.base_url}/v1/jobs/{job['id']}").json()["status"] == "cancelled"


def test_live_curve_resumes_after_the_stream_drops(service: Server, open_page: OpenPage) -> None:
    """The first connection is cut after epoch 100: the page connects again with
    Last-Event-ID 100 and draws every epoch once."""
    job = submit_job(service, epochs=400, batch_size=4, engine="numpy")
    offline = open_page(service)
    page = offline.page
    resumed_from: list[str | None] = []

    def cut_first_stream(route: Route) -> None:
        resumed_from.append(route.request.headers.get("last-event-id"))
        if len(resumed_from) > 1:
            route.continue_()
            return
        # The whole stream (the job has ended once it is read), cut after epoch 100.
        events = route.fetch().text().replace("\r\n", "\n").split("\n\n")
        cut = next(i for i, event in enumerate(events) if event.startswith("id: 100\n"))
        route.fulfill(
            status=200,
            headers={"Content-Type": "text/event-stream"},
            body="\n\n".join(events[: cut + 1]) + "\n\n",
        )

    page.route("**/v1/jobs/*/events", cut_first_stream)
    page.goto(f"/#/jobs/{job['id']}")
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=30_000)
    wait_for_points(page, 400)
    assert resumed_from == [None, "100"]


def test_live_curve_falls_back_to_polling_when_the_stream_fails(
    service: Server, open_page: OpenPage
) -> None:
    """Every connection to the stream fails: after a few tries the page reads the job and
    its history pages instead, and still draws every epoch."""
    job = submit_job(service, epochs=1500, batch_size=4)
    offline = open_page(service)
    page = offline.page
    streams: list[str] = []
    history_reads: list[str] = []

    def refuse(route: Route) -> None:
        streams.append(route.request.url)
        route.abort("connectionreset")

    page.route("**/v1/jobs/*/events", refuse)
    page.on(
        "request",
        lambda request: history_reads.append(request.url) if "/history" in request.url else None,
    )
    page.goto(f"/#/jobs/{job['id']}")
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=60_000)
    wait_for_points(page, 1500)
    assert len(streams) == 3, "the stream is tried three times before polling"
    assert history_reads, "the history was polled"


def test_pages_fit_a_phone_screen(service: Server, open_page: OpenPage) -> None:
    job = submit_job(service, epochs=50, batch_size=16)
    offline = open_page(service)
    page = offline.page
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(f"/#/jobs/{job['id']}")
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=30_000)
    expect(page.get_by_role("img", name=re.compile("^Network"))).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    offline.screenshot("job-page-375")
    page.goto("/#/jobs")
    expect(page.get_by_role("button", name="Start training")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    offline.screenshot("jobs-list-375")


def test_with_api_keys_the_live_stream_carries_the_key(
    keyed_service: Server, open_page: OpenPage
) -> None:
    """EventSource could not send the key: the page's own stream reader does."""
    job = submit_job(keyed_service, {"Authorization": f"Bearer {KEY}"}, epochs=400, batch_size=4)
    offline = open_page(keyed_service)
    page = offline.page
    sent: list[str | None] = []
    page.on(
        "request",
        lambda request: (
            sent.append(request.headers.get("authorization"))
            if request.url.endswith("/events")
            else None
        ),
    )
    page.goto(f"/#/jobs/{job['id']}")
    page.get_by_label("Key", exact=True).fill(KEY)
    page.get_by_role("button", name="Use key").click()
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=30_000)
    wait_for_points(page, 400)
    expect(page.get_by_text(re.compile("Live updates unavailable"))).to_have_count(0)
    assert sent and set(sent) == {f"Bearer {KEY}"}


def test_event_parser_reads_events_split_anywhere(service: Server, open_page: OpenPage) -> None:
    """The stream arrives in chunks cut at any byte: between the two halves of a CRLF, in
    the middle of a field name. The events read are the same as from the whole text."""
    page = open_page(service).page
    page.goto("/")
    stream = (
        ': ping\r\n\r\nevent: progress\r\ndata: {"epoch": 0}\r\n\r\n'
        'id: 1\r\nevent: epoch\r\ndata: {"epoch": 1,\r\ndata:  "loss": 0.5}\r\n\r\n'
        'id: 2\nevent: epoch\ndata: {"epoch": 2}\n\nevent: state\rdata: {}\r\r'
    )
    parsed = page.evaluate(
        """async (text) => {
            const { eventParser } = await import("./static/dashboard/sse.js");
            const read = (chunks) => {
                const parser = eventParser();
                return [...chunks.flatMap((chunk) => parser.push(chunk)), ...parser.end()];
            };
            const whole = read([text]);
            const splits = [];
            for (let cut = 1; cut < text.length; cut += 1) {
                splits.push(read([text.slice(0, cut), text.slice(cut)]));
            }
            return { whole, splits, byChar: read([...text]) };
        }""",
        stream,
    )
    assert parsed["whole"] == [
        {"type": "progress", "data": '{"epoch": 0}', "id": None},
        {"type": "epoch", "data": '{"epoch": 1,\n "loss": 0.5}', "id": "1"},
        {"type": "epoch", "data": '{"epoch": 2}', "id": "2"},
        {"type": "state", "data": "{}", "id": "2"},
    ]
    assert all(split == parsed["whole"] for split in parsed["splits"])
    assert parsed["byChar"] == parsed["whole"]
