"""A real browser for the tests: Debian's Chromium, headless, driven by selenium.

``ensure_chromium`` installs ``chromium`` and ``chromium-driver`` with apt-get when they are
missing and we are root (CI always is); elsewhere a missing browser skips with the reason.
``chromium`` yields a WebDriver on a fresh profile that talks to no host but the ones it loads.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .processes import REPO

SCREENSHOTS = REPO / "var" / "screenshots"
WINDOW = (1440, 1000)

# No first-run page, no update or sync traffic, no QUIC: the only requests are the test's own.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def _tools() -> tuple[str | None, str | None]:
    return shutil.which("chromium"), shutil.which("chromedriver")


def ensure_chromium() -> tuple[str, str]:
    """Paths of chromium and chromedriver, installed with apt-get when missing (root only)."""
    import pytest

    browser, driver = _tools()
    if browser and driver:
        return browser, driver
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("CI must provide chromium and chromedriver (apt-get install -y chromium chromium-driver)")
        pytest.skip("chromium/chromedriver are missing and only root may apt-get install chromium chromium-driver")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium", "chromium-driver"]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
        result = subprocess.run(install, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            pytest.fail(f"apt-get install chromium chromium-driver failed:\n{result.stderr[-2000:]}")
    browser, driver = _tools()
    if not (browser and driver):
        pytest.fail("chromium or chromedriver still missing after apt-get install")
    return browser, driver


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    """A headless Chromium WebDriver, 1440 px wide, on a profile of its own removed afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = ensure_chromium()
    profile = Path(tempfile.mkdtemp(prefix="penguin-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        driver.set_window_size(*WINDOW)
        driver.set_page_load_timeout(60)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(driver, name: str) -> Path:
    """The whole page (as tall as its content, 1440 px wide) saved as var/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    height = driver.execute_script(
        "return Math.max(document.body ? document.body.scrollHeight : 0, document.documentElement.scrollHeight)"
    )
    driver.set_window_size(WINDOW[0], min(max(int(height or 0), WINDOW[1]), 6000))
    try:
        driver.save_screenshot(str(path))
    finally:
        driver.set_window_size(*WINDOW)
    return path


def horizontal_overflow(driver) -> int:
    """How many pixels the page, or the admin's result table in its own scroll box, is wider
    than the space it has (0: no horizontal scroll bar anywhere)."""
    return int(
        driver.execute_script(
            """
            const boxes = [document.documentElement, ...document.querySelectorAll('.results')];
            return Math.max(0, ...boxes.map(box => box.scrollWidth - box.clientWidth));
            """
        )
    )
