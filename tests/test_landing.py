"""The landing page at / and the /admin address a person types."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.django_db


def test_the_landing_page_links_the_admin_the_docs_and_the_endpoints(client):
    answer = client.get("/")
    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("text/html")
    page = answer.content.decode()
    assert "<title>Penguin Classifier</title>" in page
    links = set(re.findall(r'href="([^"]+)"', page))
    assert {"/admin/", "/api/docs/", "/api/redoc/", "/healthz", "/readyz", "/models", "/api/schema/"} <= links
    for link in links - {"data:,"}:  # the empty favicon asks nothing of the server
        assert client.get(link).status_code in (200, 302, 503), link  # every link leads somewhere


def test_admin_without_the_slash_redirects_to_the_admin(client):
    answer = client.get("/admin")
    assert answer.status_code == 302
    assert answer["Location"] == "/admin/"


def test_the_landing_page_only_answers_reads(client):
    assert client.head("/").status_code == 200
    assert client.post("/").status_code == 405
