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


def test_static_assets_are_served(client):
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/style.css").mimetype == "text/css"


def test_docs_list_every_path_of_the_spec(client):
    html = client.get("/docs").get_data(as_text=True)
    spec = client.get("/openapi.json").get_json()
    for path in spec["paths"]:
        assert f"<code>{path}</code>" in html
