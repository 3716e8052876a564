"""The try-it page, the docs and the training report in real headless Chromium (Debian's),
driven by Playwright."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect

from bench.servers import gunicorn_command, running
from churn.config import PROJECT_ROOT
from churn.features import EXAMPLE_CUSTOMER, EXAMPLE_CUSTOMER_ID, FEATURE_FIELDS

pytestmark = pytest.mark.browser

SCREENSHOT = PROJECT_ROOT / "docs" / "try-it.png"
REPORT_SCREENSHOT = PROJECT_ROOT / "docs" / "report.png"
METADATA = json.loads((PROJECT_ROOT / "model_C=1.0.json").read_text())


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    with running(gunicorn_command(), tmp_path_factory.mktemp("browser")) as server:
        yield server


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    env = {"API_KEY": "page-key"}
    with running(gunicorn_command(), tmp_path_factory.mktemp("keyed"), env=env) as server:
        yield server


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 1500})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("console", lambda m: errors.append(m.text) if unexpected(m) else None)
    yield opened
    context.close()
    assert not errors, errors  # no script errors, no CSP violations


def unexpected(message) -> bool:
    """A console error other than the browser noting an API's 4xx answer, which tests provoke."""
    expected_answer = "the server responded with a status of 4" in message.text
    return message.type == "error" and not expected_answer


def api_probability(url: str, customer: dict, headers: dict | None = None) -> float:
    response = requests.post(url + "/predict", json=customer, headers=headers or {}, timeout=10)
    return response.json()["churn_probability"]


def test_form_has_every_field_with_vocabulary_bounds_and_course_defaults(page: Page, live):
    page.goto(live.url + "/")
    for field in FEATURE_FIELDS:
        control = page.locator(f"#f-{field}")
        expect(control).to_have_count(1)
        expect(page.locator(f"label[for='f-{field}']")).to_have_count(1)
    options = page.locator("#f-contract option").evaluate_all("els => els.map(e => e.value)")
    assert options == METADATA["schema"]["categorical"]["contract"]
    tenure = page.locator("#f-tenure")
    assert tenure.get_attribute("min") == "0"
    assert tenure.get_attribute("max") == str(METADATA["schema"]["numeric"]["tenure"]["max"])
    assert tenure.input_value() == str(EXAMPLE_CUSTOMER["tenure"])
    assert page.locator("#f-contract").input_value() == EXAMPLE_CUSTOMER["contract"]
    unlabeled = page.evaluate(
        "() => [...document.querySelectorAll('input, select')].filter(e => !e.labels.length).length"
    )
    assert unlabeled == 0


def test_submitting_shows_the_apis_probability_decision_and_chart(page: Page, live):
    page.goto(live.url + "/")
    page.select_option("#f-contract", "two_year")
    page.fill("#f-tenure", "50")
    page.select_option("#f-internetservice", "fiber_optic")
    page.click("#submit")
    expect(page.locator("#result")).to_be_visible()
    customer = {
        **EXAMPLE_CUSTOMER,
        "contract": "two_year",
        "tenure": 50,
        "internetservice": "fiber_optic",
        "totalcharges": 716.4,
    }
    expected = api_probability(live.url, customer)
    shown = float(page.locator("#probability").get_attribute("data-probability"))
    assert shown == expected
    expect(page.locator("#probability")).to_have_text(f"{expected * 100:.1f}%")
    expect(page.locator("#decision")).to_contain_text("threshold")
    assert page.locator("#chart svg rect").count() == 8
    labels = page.locator("#chart svg text:not(.value)").all_text_contents()
    assert "tenure" in labels
    SCREENSHOT.parent.mkdir(exist_ok=True)
    target = (
        SCREENSHOT if os.environ.get("UPDATE_SCREENSHOT") else Path(live.log.parent) / "page.png"
    )
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 10_000


def test_an_invalid_value_shows_the_apis_message_next_to_its_field(page: Page, live):
    page.goto(live.url + "/")
    page.fill("#f-tenure", "-3")
    page.fill("#f-monthlycharges", "1e9")
    page.click("#submit")
    expect(page.locator("#error-tenure")).to_be_visible()
    expect(page.locator("#error-tenure")).to_contain_text("greater than or equal to 0")
    expect(page.locator("#error-monthlycharges")).to_be_visible()
    assert page.locator("#f-tenure").get_attribute("aria-invalid") == "true"
    expect(page.locator("#result")).to_be_hidden()
    expect(page.locator("#error-contract")).to_be_hidden()


def test_the_form_works_from_the_keyboard(page: Page, live):
    page.goto(live.url + "/")
    page.focus("#f-tenure")
    page.keyboard.press("Control+A")
    page.keyboard.type("5")
    page.keyboard.press("Enter")  # submits the form
    expect(page.locator("#result")).to_be_visible()
    expected = api_probability(live.url, {**EXAMPLE_CUSTOMER, "tenure": 5, "totalcharges": 716.4})
    assert float(page.locator("#probability").get_attribute("data-probability")) == expected


def test_the_api_key_field_is_used_when_the_service_needs_one(page: Page, keyed):
    page.goto(keyed.url + "/")
    page.click("#submit")
    expect(page.locator("#form-error")).to_contain_text("API key")
    page.fill("#api-key", "page-key")
    page.click("#submit")
    expect(page.locator("#result")).to_be_visible()
    expected = api_probability(
        keyed.url, {**EXAMPLE_CUSTOMER, "totalcharges": 716.4}, {"X-API-Key": "page-key"}
    )
    assert float(page.locator("#probability").get_attribute("data-probability")) == expected
    # The page is not told the threshold when a key guards it, yet still states the decision.
    decision = page.locator("#decision").inner_text()
    assert "likely to churn" in decision.lower() and "threshold" not in decision


def test_docs_render_the_spec_with_examples(page: Page, live):
    page.goto(live.url + "/docs")
    expect(page.locator("h1")).to_contain_text("API")
    expect(page.locator("#endpoints + table")).to_contain_text("/predict")
    rows = page.locator("#customer + table tbody tr")
    assert rows.count() >= len(FEATURE_FIELDS)
    expect(rows.filter(has_text="contract")).to_contain_text("month-to-month")
    example = json.loads(page.locator("#example ~ pre").nth(1).inner_text())
    direct = requests.post(
        live.url + "/predict",
        json={**EXAMPLE_CUSTOMER, "customer_id": EXAMPLE_CUSTOMER_ID},
        timeout=10,
    ).json()
    assert example == direct


def test_the_training_report_opens_offline_with_every_chart(page: Page, costs_model, tmp_path):
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(costs_model.with_suffix(".report.html").as_uri())
    assert all(url.startswith(("file:", "data:")) for url in requested), requested
    widths = page.evaluate("() => [...document.images].map(i => i.complete ? i.naturalWidth : 0)")
    assert len(widths) == 8 and min(widths) > 300  # every chart decoded and drawn
    metadata = json.loads(costs_model.with_suffix(".json").read_text())
    shown = page.locator('#held-out [data-key="metrics.test_auc"]').inner_text()
    assert shown == f"{metadata['metrics']['test_auc']:.4f}"
    expect(page.locator("#threshold")).to_contain_text(f"{metadata['threshold']:g}, source costs")
    target = REPORT_SCREENSHOT if os.environ.get("UPDATE_SCREENSHOT") else tmp_path / "report.png"
    page.screenshot(path=str(target))  # the top: the threshold, its profit curve, the data
    assert target.stat().st_size > 10_000
