"""The docs and the admin in a real browser: Debian's Chromium, headless, 1440 px wide.

The live server is the session's `local_site` (`make run`'s steps: SQLite, no broker, the
default models); these tests only read from it. Each page is saved under var/screenshots/
(kept by CI as an artifact).
"""

from __future__ import annotations

import pytest

from tests.support.browser import chromium, horizontal_overflow, screenshot
from tests.support.service import ADMIN_PASSWORD, ADMIN_USER

pytestmark = pytest.mark.slow

WAIT = 30  # seconds a page may take to render before the test gives up on it


@pytest.fixture(scope="module")
def server(local_site):
    return local_site


@pytest.fixture(scope="module")
def browser():
    with chromium() as driver:
        yield driver


@pytest.fixture(scope="module")
def admin_browser(server, browser):
    """The browser, logged into the admin as the superuser `make run` creates."""
    from selenium.webdriver.common.by import By

    browser.get(f"{server.url}/admin/login/")
    screenshot(browser, "admin-login")
    browser.find_element(By.NAME, "username").send_keys(ADMIN_USER)
    browser.find_element(By.NAME, "password").send_keys(ADMIN_PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit], button[type=submit]").click()
    _wait(browser, lambda d: d.find_elements(By.ID, "user-tools"), "the admin index after logging in")
    return browser


def _wait(driver, condition, what: str):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, WAIT, poll_frequency=0.2).until(condition)
    except TimeoutException:
        raise AssertionError(f"the browser did not show {what} within {WAIT}s (at {driver.current_url})") from None


def _texts(driver, selector: str) -> list[str]:
    from selenium.webdriver.common.by import By

    return [element.text.strip() for element in driver.find_elements(By.CSS_SELECTOR, selector)]


def _open(driver, url: str) -> None:
    """Load ``url`` with the console emptied first, so ``_page_errors`` speaks of this page only."""
    _page_errors(driver)
    driver.get(url)


def _page_errors(driver) -> list[str]:
    """SEVERE entries of the page's console (failed loads, script errors)."""
    try:
        return [entry["message"] for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]
    except Exception:
        return []


def test_landing_page_leads_to_the_admin_and_the_docs(server, browser):
    from selenium.webdriver.common.by import By

    _open(browser, f"{server.url}/")
    screenshot(browser, "landing")
    assert browser.title == "Penguin Classifier"
    links = {a.text: a.get_attribute("href") for a in browser.find_elements(By.TAG_NAME, "a")}
    assert links["Admin"] == f"{server.url}/admin/"
    assert links["API docs (Swagger UI)"] == f"{server.url}/api/docs/"
    assert not _page_errors(browser)


# The docs' scripts and styles are our own static files (drf-spectacular-sidecar): a machine
# without internet access renders them too, and they name no other host.
def test_swagger_ui_lists_the_operations(server, browser):
    _open(browser, f"{server.url}/api/docs/")
    try:
        _wait(browser, lambda d: len(_texts(d, ".opblock-summary-path")) > 5, "Swagger UI's operations")
    finally:
        screenshot(browser, "docs-swagger")
    # Swagger UI puts zero-width spaces into long paths so that they may wrap.
    paths = {path.replace("\u200b", "") for path in _texts(browser, ".opblock-summary-path")}
    assert {"/api/v1/models", "/api/v1/models/{model_name}/predict", "/classify/{name}", "/models"} <= paths
    assert "/v2/models/{name}/infer" in paths
    assert not [src for src in _script_sources(browser) if not src.startswith(server.url)]
    assert not _page_errors(browser)


def test_redoc_shows_the_operations(server, browser):
    from selenium.webdriver.common.by import By

    _open(browser, f"{server.url}/api/redoc/")
    try:
        _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-section-id^='operation']"), "ReDoc's menu")
    finally:
        screenshot(browser, "docs-redoc")
    assert "Penguin Classifier API" in browser.find_element(By.TAG_NAME, "body").text
    assert not [src for src in _script_sources(browser) if not src.startswith(server.url)]
    assert not _page_errors(browser)


def _script_sources(driver) -> list[str]:
    return driver.execute_script("return Array.from(document.scripts).map(s => s.src).filter(Boolean)")


def test_admin_model_list_shows_the_default_models(server, admin_browser):
    browser = admin_browser
    _open(browser, f"{server.url}/admin/classifier/mlmodel/")
    screenshot(browser, "admin-models")
    names = _texts(browser, "#result_list tbody th a, #result_list tbody td.field-name a")
    assert {"gradientboosting", "knn", "logisticregression", "randomforest", "svm"} <= set(names)
    assert not _page_errors(browser)


def test_admin_version_page_shows_metrics_and_confusion_matrix(server, admin_browser):
    from selenium.webdriver.common.by import By

    browser = admin_browser
    _open(browser, f"{server.url}/admin/classifier/modelversion/?q=knn")
    links = browser.find_elements(By.CSS_SELECTOR, "#result_list tbody a[href*='/change/']")
    assert links, "the version list links no version"
    links[0].click()
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "img[src*='confusion']"), "the confusion matrix")
    screenshot(browser, "admin-version")
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "knn" in body and "test accuracy" in body.lower()
    picture = browser.find_element(By.CSS_SELECTOR, "img[src*='confusion']")
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", picture) > 100
    assert horizontal_overflow(browser) == 0
    assert not _page_errors(browser)


def test_admin_monitoring_page_renders_when_the_model_has_one(server, admin_browser):
    from selenium.webdriver.common.by import By

    browser = admin_browser
    browser.get(f"{server.url}/admin/classifier/mlmodel/")
    browser.find_element(By.LINK_TEXT, "knn").click()
    _wait(browser, lambda d: d.find_elements(By.ID, "content"), "the knn model page")
    screenshot(browser, "admin-model")
    monitoring = [a for a in browser.find_elements(By.TAG_NAME, "a") if "monitoring" in a.text.lower()]
    if not monitoring:
        pytest.skip("the model page has no monitoring page to open")
    monitoring[0].click()
    _wait(browser, lambda d: d.find_elements(By.ID, "content"), "the monitoring page")
    screenshot(browser, "admin-monitoring")
    assert "knn" in browser.find_element(By.ID, "content").text
    assert horizontal_overflow(browser) == 0
