"""The docs pages load only what the service itself serves: no URL of another host in
their HTML, every asset they name served here (behind a proxy's root_path too), and none
of them in the API's schema."""

import re

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.config import Settings

PAGES = ("/docs", "/redoc")
ABSOLUTE_URL = re.compile(r"https?://[^\s\"'<>)]+")
# What the pages load: scripts, stylesheets and the icon.
ASSET = re.compile(r'(?:src|href)="([^"]+)"')


@pytest.mark.parametrize("page", PAGES)
def test_a_docs_page_names_no_url_outside_the_service(client: TestClient, page: str) -> None:
    html = client.get(page).text

    outside = [
        url for url in ABSOLUTE_URL.findall(html) if not url.startswith(str(client.base_url))
    ]
    assert outside == []
    assets = ASSET.findall(html)
    assert any(asset.endswith(".js") for asset in assets)
    for asset in assets:
        assert client.get(asset).status_code == 200, asset


@pytest.mark.parametrize("page", PAGES)
def test_behind_a_proxy_the_pages_name_their_assets_under_its_root_path(
    migrated_url: str, page: str
) -> None:
    app = create_app(Settings(database_url=migrated_url))
    with TestClient(app, root_path="/backprop") as client:
        html = client.get(page).text

    assets = ASSET.findall(html)
    assert assets and all(asset.startswith("/backprop/static/vendor/") for asset in assets)
    assert "/backprop/openapi.json" in html


def test_the_swagger_oauth2_redirect_page_is_served(client: TestClient) -> None:
    response = client.get("/docs/oauth2-redirect")

    assert response.status_code == 200
    assert "oauth2" in response.text.lower()
    assert ABSOLUTE_URL.findall(response.text) == []


def test_the_docs_pages_are_not_operations_of_the_api(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    assert not [path for path in paths if path.startswith(("/docs", "/redoc", "/static"))]
