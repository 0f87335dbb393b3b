"""The trace view: the notebook's first backprop step, every value on the network and in
a table, with editable start values."""

import json
from collections.abc import Callable
from typing import Any

import httpx2
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import OfflinePage, fits_the_width
from tests.helpers import EXAMPLES, Server

# The notebook's golden numbers (docs: product.md; tests/core/test_trace_golden.py), as the
# notebook prints them: 8 decimals.
GOLDEN = {
    "Hidden aggregate": "[4.98368353, 1.29043732]",
    "Hidden activation": "[4.98368353, 1.29043732]",
    "Output": "[0.06257453]",
    "Output error": "[-0.93742547]",
    "Output weight gradient": "[[-4.67183186, -1.20968881]]",
    "Updated output weights": "[[-0.10463889, -0.09112196]]",
    "Updated output bias": "[0.95946267]",
    "Hidden delta": "[0.09809116, 0.08542005]",
    "Hidden weight gradient": "[[0.09809116, 0.09809116], [0.08542005, 0.08542005]]",
    "Updated hidden weights": "[[0.97775707, 2.23991229], [1.86670379, -0.97813208]]",
    "Updated hidden bias": "[1.76307143, 0.39930301]",
    "Loss": "0.43938325",
}


def value_of(page: Page, quantity: str) -> Locator:
    table = page.get_by_role("table", name="Every value of the step, in the notebook's order")
    return (
        table.get_by_role("row")
        .filter(has=page.get_by_role("rowheader", name=quantity, exact=True))
        .get_by_role("cell")
        .last
    )


def typeset(text: str) -> str:
    """`text` with the minus signs and primes the diagram prints."""
    return text.replace("-", "\N{MINUS SIGN}").replace("'", "\N{PRIME}")


def printed(value: Any) -> str:
    """`value` as the page prints it: 8 decimals, in brackets."""
    if isinstance(value, list):
        return "[" + ", ".join(printed(item) for item in value) + "]"
    return f"{value:.8f}"


def test_the_trace_page_shows_the_notebooks_step(
    service: Server, open_page: Callable[[Server], OfflinePage]
) -> None:
    offline = open_page(service)
    page = offline.page
    page.goto("/#/trace")
    for quantity, golden in GOLDEN.items():
        expect(value_of(page, quantity)).to_have_text(golden)
    # The same values on the diagram, on the node or edge they belong to.
    diagram = page.get_by_role("img", name="One backprop step on the 2-2-1 network")
    labels = diagram.locator("text")
    expect(labels.filter(has_text="a = 0.06")).to_have_text("ŷa = 0.0625745ŷ = 0.0625745")
    expect(labels.filter(has_text="target")).to_have_text(
        typeset("target t = 1loss ½(ŷ - t)² = 0.439383∂L/∂ŷ = ŷ - t = -0.937425")
    )
    expect(labels.filter(has_text="w²₁₁")).to_have_text(
        typeset("w²₁₁ = -0.151357∂L/∂w = -4.67183w' = -0.104639")
    )
    expect(labels.filter(has_text="0.0980912b")).to_have_text(
        "δ = ∂L/∂b = 0.0980912b = 1.76405 → 1.76307"
    )
    expect(page.get_by_label("Learning rate η")).to_have_value("0.01")
    offline.screenshot("trace")


def test_edited_values_run_the_step_the_api_computes(
    service: Server, open_page: Callable[[Server], OfflinePage]
) -> None:
    page = open_page(service).page
    page.goto("/#/trace")
    expect(value_of(page, "Output")).to_have_text(GOLDEN["Output"])
    page.get_by_label("Learning rate η").fill("0.1")
    page.get_by_label("Input x2").fill("-0.5")
    page.get_by_label("Weight h1 → y").fill("0.25")
    page.get_by_label("Update rule").select_option("standard")
    page.get_by_label("Hidden activation").select_option("tanh")
    page.get_by_role("button", name="Run step").click()

    body = json.loads((EXAMPLES / "notebook-trace.json").read_text())
    body["network"]["hidden_activation"] = "tanh"
    body["parameters"]["layers"][1]["weights"][0][0] = 0.25
    body.update(input=[1, -0.5], learning_rate=0.1, update_rule="standard")
    step = httpx2.post(f"{service.base_url}/v1/trace", json=body).raise_for_status().json()
    expect(value_of(page, "Output")).to_have_text(printed(step["output"]))
    expect(value_of(page, "Hidden delta")).to_have_text(printed(step["backward"][0]["delta"]))
    expect(value_of(page, "Updated hidden weights")).to_have_text(
        printed(step["updated"]["layers"][0]["weights"])
    )

    # Another step from where this one ended.
    page.get_by_role("button", name="Step again from the updated weights").click()
    updated = step["updated"]["layers"][1]["weights"][0][0]
    expect(page.get_by_label("Weight h1 → y")).to_have_value(str(updated))
    expect(value_of(page, "Hidden delta")).not_to_have_text(printed(step["backward"][0]["delta"]))

    page.get_by_role("button", name="Reset to the notebook's values").click()
    expect(value_of(page, "Hidden delta")).to_have_text(GOLDEN["Hidden delta"])
    expect(page.get_by_label("Input x2")).to_have_value("1")


def test_a_value_the_api_refuses_is_reported_next_to_its_field(
    service: Server, open_page: Callable[[Server], OfflinePage]
) -> None:
    page = open_page(service).page
    page.goto("/#/trace")
    expect(value_of(page, "Output")).to_have_text(GOLDEN["Output"])
    rate = page.get_by_label("Learning rate η")
    rate.fill("-1")
    rate.press("Enter")
    expect(rate).to_have_accessible_description("Input should be greater than 0")
    expect(rate).to_have_attribute("aria-invalid", "true")


def test_the_trace_page_fits_a_narrow_screen(
    service: Server, open_page: Callable[[Server], OfflinePage]
) -> None:
    offline = open_page(service)
    page = offline.page
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto("/#/trace")
    expect(value_of(page, "Output")).to_have_text(GOLDEN["Output"])
    assert fits_the_width(page)
    offline.screenshot("trace-narrow")
