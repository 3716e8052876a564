"""The HTML pages through the test client (the browser tests drive them for real)."""

from __future__ import annotations

import json

from churn.features import FEATURE_FIELDS
from tests.conftest import COMMITTED_MODEL, make_app

METADATA = json.loads(COMMITTED_MODEL.with_suffix(".json").read_text())


def test_try_it_page_has_a_labelled_control_per_field(client):
    response = client.get("/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    for field in FEATURE_FIELDS:
        assert f'id="f-{field}"' in html and f'for="f-{field}"' in html
    for value in METADATA["schema"]["categorical"]["paymentmethod"]:
        assert f'value="{value}"' in html
    assert "<script>" not in html  # scripts come from /static, as the CSP requires


def test_try_it_page_shows_the_configured_threshold():
    html = make_app(threshold=0.3).test_client().get("/").get_data(as_text=True)
    assert 'data-threshold="0.3"' in html


def test_pages_stay_open_when_an_api_key_is_set():
    client = make_app(api_key="k").test_client()
    assert client.get("/").status_code == 200
    assert "requires one" in client.get("/").get_data(as_text=True)
    assert client.get("/docs").status_code == 200


# What /model guards. With API_KEY set the open pages show the request contract and nothing of
# this (churn/web.py); an unusual threshold makes its absence checkable.
GUARDED_THRESHOLD = "0.4217"


def guarded_facts() -> list[str]:
    metrics, data = METADATA["metrics"], METADATA["data"]
    return [
        GUARDED_THRESHOLD,
        f"{metrics['test_auc']:.3f}",
        f"{metrics['cv_auc_mean']:.3f}",
        data["sha256"],
        METADATA["created_at"],
        "observed_m",  # observed_min / observed_max: ranges seen in the training data
    ]


def open_pages(client) -> dict[str, str]:
    return {
        path: client.get(path).get_data(as_text=True) for path in ("/", "/docs", "/openapi.json")
    }


def test_open_pages_show_none_of_what_the_key_guards(customer):
    client = make_app(api_key="k", threshold=float(GUARDED_THRESHOLD)).test_client()
    score = client.post("/predict", json=customer, headers={"X-API-Key": "k"}).get_json()
    for path, text in open_pages(client).items():
        for fact in [*guarded_facts(), str(score["churn_probability"])[:8]]:
            assert fact not in text, (path, fact)
        assert "paymentmethod" in text  # the request contract is still there


def test_without_a_key_the_pages_show_the_models_facts():
    pages = open_pages(make_app(threshold=float(GUARDED_THRESHOLD)).test_client())
    assert f"{METADATA['metrics']['test_auc']:.3f}" in pages["/"]
    assert GUARDED_THRESHOLD in pages["/"] and GUARDED_THRESHOLD in pages["/docs"]


def test_static_assets_are_served(client):
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/style.css").mimetype == "text/css"


def test_docs_list_every_path_of_the_spec(client):
    html = client.get("/docs").get_data(as_text=True)
    spec = client.get("/openapi.json").get_json()
    for path in spec["paths"]:
        assert f"<code>{path}</code>" in html


def test_the_form_labels_fields_and_sends_the_flag_as_a_number(client):
    html = client.get("/").get_data(as_text=True)
    assert '<label for="f-seniorcitizen">Senior citizen</label>' in html
    assert '<label for="f-tenure">Tenure (months)</label>' in html
    flag = html[html.index('id="f-seniorcitizen"') :].split(">", 1)[0]
    contract = html[html.index('id="f-contract"') :].split(">", 1)[0]
    assert 'data-kind="number"' in flag and 'data-kind="text"' in contract


def test_the_openapi_example_is_the_course_customer_and_is_accepted(client):
    spec = client.get("/openapi.json").get_json()
    example = spec["components"]["schemas"]["Customer"]["example"]
    assert (example["customer_id"], example["contract"], example["tenure"]) == (
        "xyz-123",
        "month-to-month",
        24,
    )
    response = client.post("/predict", json=example)
    assert response.status_code == 200 and response.get_json()["customer_id"] == "xyz-123"
