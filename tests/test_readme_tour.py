"""The README's curl tour, then docs/api.md's, run in order with curl against a fresh `make run`.

Each command runs as the page writes it (only the host and port differ, and ``$TOKEN`` is made
with ``manage.py drf_create_token admin`` as the page says); its answer must be the one the
page shows after it: the status, and every key and value the page prints.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.support.processes import REPO
from tests.support.service import ADMIN_USER, local_server
from tests.support.tour import curl_steps, mismatch

pytestmark = pytest.mark.slow

PAGES = [REPO / "README.md", REPO / "docs" / "api.md"]


@pytest.fixture(scope="module")
def local_site():
    """A fresh `make run` (SQLite, no broker, the five default models): the tour's ids start from it."""
    with local_server() as site:
        yield site


def test_the_pages_show_a_tour_with_answers():
    steps = [step for page in PAGES for step in curl_steps(page)]
    assert len(steps) >= 12
    assert sum(step.expected is not None for step in steps) >= 10


def test_the_readme_tour_answers_what_the_pages_show(local_site):
    curl = shutil.which("curl")
    if not curl:
        pytest.skip("curl is not installed")
    created = local_site.manage("drf_create_token", ADMIN_USER).stdout
    token = created.split("Generated token ", 1)[1].split()[0]
    env = {**os.environ, "TOKEN": token, "NEXT_URL_FROM_THE_ANSWER": ""}

    problems = []
    for step in (step for page in PAGES for step in curl_steps(page)):
        command = step.command.replace("http://127.0.0.1:8000", local_site.url)
        result = subprocess.run(
            ["bash", "-c", command + " -w '\\n%{http_code}'"], env=env, capture_output=True, text=True, timeout=120
        )
        body, _, status = result.stdout.rpartition("\n")
        next_url = _next_link(body)
        if next_url:
            env["NEXT_URL_FROM_THE_ANSWER"] = next_url
        body = body.replace(local_site.url, "http://127.0.0.1:8000")  # links in answers name the page's host
        if result.returncode != 0 or not status.isdigit():
            problems.append(f"{step}\n  curl failed ({result.returncode}): {result.stderr.strip()}")
            continue
        try:
            answer = json.loads(body)
        except ValueError:
            problems.append(f"{step}\n  not JSON ({status}): {body[:300]}")
            continue
        if step.status is not None and int(status) != step.status:
            problems.append(f"{step}\n  status {status}, the page shows {step.status}: {body[:300]}")
        elif step.status is None and not 200 <= int(status) < 300:
            problems.append(f"{step}\n  status {status}: {body[:300]}")
        if step.expected is not None:
            found = mismatch(step.expected, answer)
            if found:
                problems.append(f"{step}\n  {found}\n  the answer: {body[:400]}")
    assert not problems, "\n".join(problems)


def _next_link(body: str) -> str | None:
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    return answer.get("next") if isinstance(answer, dict) else None


def test_the_server_says_where_the_landing_page_admin_and_docs_are(local_site):
    url = local_site.url
    assert f"Serving {url}/  admin: {url}/admin/  API docs: {url}/api/docs/" in local_site.server.log_text()
