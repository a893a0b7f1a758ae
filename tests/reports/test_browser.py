"""The reports in a real browser (headless Chromium through chromedriver): every image loads,
the key sections render, nothing is logged to the console; screenshots are kept for review in
``build/test-artifacts/reports/``."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts" / "reports"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("chromium / chromedriver not installed (Debian: chromium chromium-driver)")
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1300,1000",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def open_report(driver, path: Path, shot: str) -> dict:
    """Load ``path``, screenshot the whole page, return what the page says about itself."""
    driver.get(path.resolve().as_uri())
    driver.execute_script("return document.readyState")
    state = driver.execute_script(
        """
        const imgs = Array.from(document.images);
        return {
          images: imgs.map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0]),
          ids: Array.from(document.querySelectorAll('section[id]')).map(s => s.id),
          height: document.documentElement.scrollHeight,
          title: document.title,
        };
        """
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.set_window_size(1300, min(max(800, state["height"]), 16000))
    driver.save_screenshot(str(ARTIFACTS / shot))
    state["console"] = [
        entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")
    ]
    return state


def test_session_report_in_chromium(app_run, browser):
    tmp, *_ = app_run
    state = open_report(browser, tmp / "out" / "sub-01.html", "sub-01.png")
    assert state["title"] == "infant-tissue report: sub-01"
    assert len(state["images"]) == 9
    assert all(ok for _, ok in state["images"]), state["images"]
    for section in ("summary", "registration", "tissues-axial", "probabilities", "volumes"):
        assert section in state["ids"]
    assert {"cohort", "methods"} <= set(state["ids"])
    assert state["console"] == []
    assert (ARTIFACTS / "sub-01.png").stat().st_size > 10_000


def test_failed_session_report_in_chromium(app_run, browser):
    tmp, *_ = app_run
    state = open_report(browser, tmp / "out" / "sub-03.html", "sub-03-failed.png")
    assert "errors" in state["ids"] and state["images"] == []
    assert state["console"] == []
    text = browser.find_element("id", "errors").text
    assert "This session failed" in text and "gzip" in text


def test_group_report_in_chromium(app_run, browser):
    tmp, *_ = app_run
    state = open_report(browser, tmp / "out" / "group" / "report.html", "group.png")
    assert len(state["images"]) == 2 and all(ok for _, ok in state["images"])
    assert {"outliers", "problems", "sessions"} <= set(state["ids"])
    assert state["console"] == []
    # the links to session reports lead to pages that exist
    browser.find_element("link text", "sub-03").click()
    assert browser.title == "infant-tissue report: sub-03"
