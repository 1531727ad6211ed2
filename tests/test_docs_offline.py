"""Swagger UI and ReDoc load everything from this server (drf-spectacular-sidecar's files)."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders

pytestmark = pytest.mark.django_db

URL_ATTRIBUTES = re.compile(r'(?:src|href)\s*=\s*"([^"]+)"')
ANY_URL = re.compile(r"https?://[^\s\"'<>)]+")


def local_assets(html: str) -> list[str]:
    return [url for url in URL_ATTRIBUTES.findall(html) if url.startswith("/static/")]


@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_docs_pages_name_no_other_host(client, page):
    response = client.get(page)
    assert response.status_code == 200
    html = response.content.decode()
    assert ANY_URL.findall(html) == []
    assert all(url.startswith("/") for url in URL_ATTRIBUTES.findall(html))
    assert any(url.endswith(".js") for url in local_assets(html))


@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_docs_scripts_and_styles_are_our_static_files(client, page):
    html = client.get(page).content.decode()
    for url in local_assets(html):
        assert finders.find(url.removeprefix("/static/")), url


def test_swagger_ui_asks_no_online_validator(client):
    html = client.get("/api/docs/").content.decode()
    assert '"validatorUrl": null' in html
