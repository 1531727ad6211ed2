"""The docs and the admin in a real browser: Debian's Chromium, headless, 1440 px wide.

One live server for the module (`make run`'s steps: SQLite, no broker) with knn trained
twice and svm once, and predictions sent through all three endpoints. Every page visited is
saved under var/screenshots/ (kept by CI as an artifact, not committed).
"""

from __future__ import annotations

import pytest

from tests.support.browser import chromium, horizontal_overflow, screenshot
from tests.support.data import random_penguins
from tests.support.http import http
from tests.support.service import ADMIN_PASSWORD, ADMIN_USER, local_server

pytestmark = pytest.mark.slow

WAIT = 30  # seconds a page may take to render before the test gives up on it


@pytest.fixture(scope="module")
def server():
    with local_server(train=False) as live:
        live.manage("train_model", "knn")
        live.manage("train_model", "knn", "--param", "n_neighbors=9", "--param", "weights=distance")
        live.manage("train_model", "svm")
        penguins = random_penguins(30)
        for penguin in penguins[:10]:
            assert http("POST", f"{live.url}/classify/knn", penguin).status == 200
        assert http("POST", f"{live.url}/api/v1/models/knn/predict", {"instances": penguins[10:25]}).status == 200
        # The /v2 rows go in as one tensor per field, island and sex as names.
        columns = {
            name: [penguin[name] for penguin in penguins[25:]]
            for name in ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year")
        }
        inputs = [
            {"name": name, "shape": [len(values)], "datatype": "FP64", "data": values}
            for name, values in columns.items()
        ]
        inputs += [
            {"name": "island", "shape": [5], "datatype": "BYTES", "data": ["Biscoe"] * 5},
            {"name": "sex", "shape": [5], "datatype": "BYTES", "data": ["female"] * 5},
        ]
        assert http("POST", f"{live.url}/v2/models/svm/infer", {"inputs": inputs}).status == 200
        yield live


@pytest.fixture(scope="module")
def browser():
    with chromium() as driver:
        yield driver


@pytest.fixture(scope="module")
def admin_browser(server, browser):
    """The browser, logged into the admin as the superuser `make run` creates."""
    from selenium.webdriver.common.by import By

    _open(browser, f"{server.url}/admin")  # without the slash: redirected, then to the login
    screenshot(browser, "admin-login")
    browser.find_element(By.NAME, "username").send_keys(ADMIN_USER)
    browser.find_element(By.NAME, "password").send_keys(ADMIN_PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit], button[type=submit]").click()
    _wait(browser, lambda d: d.find_elements(By.ID, "user-tools"), "the admin index after logging in")
    screenshot(browser, "admin-index")
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


def _heading(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, "#content h1").text


def _column_texts(driver, column: str) -> list[str]:
    return _texts(driver, f"#result_list tbody td.field-{column}, #result_list tbody th.field-{column}")


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
    assert {"/api/v1/models", "/classify/{name}", "/models"} <= paths
    assert any(path.startswith("/api/v1/models/{") and path.endswith("}/predict") for path in paths)
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


def test_redoc_asks_no_other_host(server, browser):
    from selenium.webdriver.common.by import By

    _open(browser, f"{server.url}/api/redoc/")
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-section-id^='operation']"), "ReDoc's menu")
    # The bundle's logo from its makers' CDN is refused by the page's policy before any request
    # (Chrome reports "violates the following Content Security Policy directive ... blocked");
    # any other failed load or script error fails the test (the browser's own favicon.ico guess
    # is a 404 from this server, not another host).
    errors = _page_errors(browser)
    assert not [e for e in errors if "Content Security Policy" not in e and "/favicon.ico" not in e], errors


def _script_sources(driver) -> list[str]:
    return driver.execute_script("return Array.from(document.scripts).map(s => s.src).filter(Boolean)")


def test_admin_model_list(server, admin_browser):
    browser = admin_browser
    _open(browser, f"{server.url}/admin/classifier/mlmodel/")
    screenshot(browser, "admin-models")
    assert _heading(browser) == "Models"
    assert "Penguin Classifier" in _texts(browser, "#site-name")[0]
    assert set(_column_texts(browser, "name")) == {"knn", "svm"}
    assert horizontal_overflow(browser) == 0
    assert not _page_errors(browser)


def test_admin_version_page_shows_live_numbers_params_and_the_picture(server, admin_browser):
    from selenium.webdriver.common.by import By

    browser = admin_browser
    _open(browser, f"{server.url}/admin/classifier/modelversion/?q=knn")
    screenshot(browser, "admin-versions")
    assert _heading(browser) == "Model versions"
    browser.find_element(By.LINK_TEXT, "knn v2").click()
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "img[src*='confusion']"), "the confusion matrix")
    screenshot(browser, "admin-version")
    assert _heading(browser) == "Model version knn v2"
    body = browser.find_element(By.ID, "content").text
    assert "25 predictions logged" in body  # 10 through /classify, 15 through predict
    params = browser.find_element(By.CSS_SELECTOR, ".field-params_table")
    assert "n_neighbors" in params.text and "weights" in params.text and "leaf_size" not in params.text
    params.find_element(By.TAG_NAME, "summary").click()
    assert "leaf_size" in params.text  # the full set, behind the toggle
    picture = browser.find_element(By.CSS_SELECTOR, "img[src*='confusion']")
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", picture) > 100
    assert horizontal_overflow(browser) == 0
    assert not _page_errors(browser)


def test_admin_runs_list_shows_duration_version_activated_and_error_unclipped(server, admin_browser):
    browser = admin_browser
    _open(browser, f"{server.url}/admin/training/trainingrun/")
    screenshot(browser, "admin-runs")
    assert _heading(browser) == "Training runs"
    assert all(text.endswith(" s") for text in _column_texts(browser, "duration"))
    assert sorted(_column_texts(browser, "version_display")) == ["knn v1", "knn v2", "svm v1"]
    assert _column_texts(browser, "short_error") == ["-", "-", "-"]
    assert horizontal_overflow(browser) == 0


def test_admin_predictions_list_fits_and_takes_feedback_in_bulk(server, admin_browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser = admin_browser
    _open(browser, f"{server.url}/admin/classifier/prediction/")
    screenshot(browser, "admin-predictions")
    assert _heading(browser) == "Predictions"
    assert set(_column_texts(browser, "endpoint_label")) == {"classify", "predict", "infer"}
    assert all(text == "-" or 0 <= float(text) <= 1 for text in _column_texts(browser, "answer_probability"))
    assert horizontal_overflow(browser) == 0

    species = _column_texts(browser, "species")
    boxes = browser.find_elements(By.CSS_SELECTOR, "#result_list tbody input.action-select")
    for box in boxes[:4]:
        box.click()
    Select(browser.find_element(By.NAME, "action")).select_by_value("feedback_gentoo")
    browser.find_element(By.CSS_SELECTOR, "button[name=index]").click()
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".messagelist"), "the feedback message")
    assert "Recorded Gentoo as the true species of 4 prediction(s)." in _texts(browser, ".messagelist li")
    screenshot(browser, "admin-predictions-feedback")

    _open(browser, f"{server.url}/admin/classifier/prediction/?answer=wrong")
    screenshot(browser, "admin-predictions-wrong")
    assert len(_column_texts(browser, "species")) == sum(name != "Gentoo" for name in species[:4])


def test_admin_prediction_page_shows_names_and_takes_feedback(server, admin_browser):
    from selenium.webdriver.common.by import By

    browser = admin_browser
    _open(browser, f"{server.url}/admin/classifier/prediction/?endpoint__exact=classify")
    browser.find_element(By.CSS_SELECTOR, "#result_list tbody th a").click()
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".feedback-form"), "the feedback buttons")
    inputs = browser.find_element(By.CSS_SELECTOR, ".field-inputs_table").text
    assert any(island in inputs for island in ("Torgersen", "Biscoe", "Dream"))
    assert "female" in inputs or "male" in inputs
    browser.find_element(By.CSS_SELECTOR, ".feedback-form button[value='2']").click()
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".messagelist"), "the feedback message")
    screenshot(browser, "admin-prediction")
    assert any("Recorded Chinstrap as the true species" in text for text in _texts(browser, ".messagelist li"))
    assert "Chinstrap" in browser.find_element(By.CSS_SELECTOR, ".field-truth").text
    assert horizontal_overflow(browser) == 0


def test_admin_activation_asks_why_and_the_model_page_keeps_the_history(server, admin_browser):
    from selenium.webdriver.common.by import By

    browser = admin_browser
    _open(browser, f"{server.url}/admin/classifier/modelversion/?q=knn")
    browser.find_element(By.LINK_TEXT, "knn v1").click()
    browser.find_element(By.CSS_SELECTOR, ".object-tools a[href*='activate/?ids=']").click()
    _wait(browser, lambda d: d.find_elements(By.NAME, "reason"), "the activation form")
    screenshot(browser, "admin-activate")
    assert _heading(browser) == "Activate knn v1?"
    assert "instead of v2" in browser.find_element(By.ID, "content").text
    browser.find_element(By.NAME, "reason").send_keys("v2 confuses Chinstraps")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".messagelist"), "the activation message")
    screenshot(browser, "admin-activated")
    messages = _texts(browser, ".messagelist li")
    assert any("knn v1 is now active (instead of v2)" in text.lower() for text in messages), messages

    _open(browser, f"{server.url}/admin/classifier/mlmodel/")
    browser.find_element(By.LINK_TEXT, "knn").click()
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".field-activation_history"), "the history")
    screenshot(browser, "admin-model")
    assert _heading(browser) == "Model knn"
    history = browser.find_element(By.CSS_SELECTOR, ".field-activation_history").text
    assert "v2 confuses Chinstraps" in history and ADMIN_USER in history
    assert horizontal_overflow(browser) == 0


def test_admin_monitoring_page_renders_when_the_model_has_one(server, admin_browser):
    from selenium.webdriver.common.by import By

    browser = admin_browser
    _open(browser, f"{server.url}/admin/classifier/mlmodel/")
    browser.find_element(By.LINK_TEXT, "knn").click()
    _wait(browser, lambda d: d.find_elements(By.ID, "content"), "the knn model page")
    monitoring = browser.find_elements(By.CSS_SELECTOR, "#content a[href$='/monitoring/']")
    if not monitoring:
        pytest.skip("the model page has no monitoring page to open")
    browser.get(monitoring[0].get_attribute("href"))
    _wait(browser, lambda d: d.find_elements(By.ID, "content"), "the monitoring page")
    screenshot(browser, "admin-monitoring")
    assert "knn" in browser.find_element(By.ID, "content").text
    assert horizontal_overflow(browser) == 0
