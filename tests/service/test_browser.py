"""End to end in real headless Chromium: sign in, import, review, correct, export.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/browser.sh`` installs them); the
browser is driven by Selenium through /usr/bin/chromedriver, never a downloaded browser.
"""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_helpers import PASSWORD, TOY_ROWS, live_server, proposals_csv

CHROMIUM = Path("/usr/bin/chromium")
DRIVER = Path("/usr/bin/chromedriver")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and DRIVER.exists()),
        reason="needs Debian's chromium and chromium-driver (run .ci/browser.sh)",
    ),
]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Chromium with downloads going to ``tmp_path / 'downloads'``."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service as DriverService

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1440,1000"):
        options.add_argument(arg)
    options.add_argument("--disable-dev-shm-usage")
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(options=options, service=DriverService(str(DRIVER)))
    driver.execute_cdp_cmd(
        "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    driver.implicitly_wait(5)
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()


def _text(driver: Any, css: str) -> str:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    # A saved decision re-renders the page (with its 已保存 message), so an element found a
    # moment ago may be gone: read it again on the next poll.
    try:
        return str(driver.find_element(By.CSS_SELECTOR, css).text.strip())
    except StaleElementReferenceException:
        return ""


def _wait(predicate: Any, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def download_assignments(browser: Any) -> list[tuple[Any, ...]]:
    """Press the queue's 交办 export and read the downloaded workbook's rows back."""
    from openpyxl import load_workbook
    from selenium.webdriver.common.by import By

    browser.find_element(By.ID, "export-assignments").click()
    _wait(
        lambda: any(p.suffix == ".xlsx" for p in browser.downloads.iterdir()),
        what="the downloaded export",
    )
    path = next(p for p in browser.downloads.iterdir() if p.suffix == ".xlsx")
    _wait(lambda: path.stat().st_size > 0, what="the download to finish")
    return list(load_workbook(io.BytesIO(path.read_bytes())).active.iter_rows(values_only=True))


def sign_in(browser: Any, base: str, user: str = "rev") -> None:
    """Sign in on the sign-in page and wait until the queue is shown (not the sign-in page)."""
    from selenium.webdriver.common.by import By

    browser.get(f"{base}/login")
    browser.find_element(By.NAME, "username").send_keys(user)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    _wait(
        lambda: "/queue" in browser.current_url and "/login" not in browser.current_url,
        what="the queue after sign-in",
    )


def test_review_flow_in_chromium(
    browser: Any, tmp_path: Path, baseline_bundle: Path, tiny_backbone_dir: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    upload = tmp_path / "提案.csv"
    upload.write_bytes(proposals_csv(TOY_ROWS))
    with live_server(tmp_path, baseline_bundle, str(tiny_backbone_dir)) as (base, state):
        # Sign in (redirected from the queue to the sign-in page and back).
        browser.get(f"{base}/queue")
        assert "/login" in browser.current_url
        browser.find_element(By.NAME, "username").send_keys("rev")
        browser.find_element(By.NAME, "password").send_keys(PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        _wait(
            lambda: "/queue" in browser.current_url and "/login" not in browser.current_url,
            what="the queue after sign-in",
        )

        # Import a file and watch its progress page finish.
        browser.get(f"{base}/import")
        browser.find_element(By.NAME, "file").send_keys(str(upload))
        browser.find_element(By.CSS_SELECTOR, "form.card button[type=submit]").click()
        _wait(lambda: "/jobs/" in browser.current_url, what="the progress page")
        status = browser.find_element(By.ID, "job-status")
        _wait(lambda: status.get_attribute("data-status") == "done", what="the import job")
        assert _text(browser, "#job-status") == "已完成"
        assert "新增 5" in _text(browser, "#job-result")
        state.jobs.wait_idle()  # suggestions, duplicates and topics

        # Open a proposal from the queue and accept the suggestion in one click.
        browser.get(f"{base}/queue?year=2024")
        browser.find_element(By.LINK_TEXT, "A-001").click()
        suggested = browser.find_element(By.CSS_SELECTOR, "#head-category ul.bars li .label").text
        assert _text(browser, "#current-category") == "—"
        browser.find_element(By.ID, "accept-all").click()
        _wait(lambda: _text(browser, "#current-category") == suggested, what="the accepted label")
        assert _text(browser, "#current-main-unit") != "—"

        # Correct another: pick a category other than the suggested one.
        browser.get(f"{base}/proposals/2024/A-002")
        top = browser.find_element(By.CSS_SELECTOR, "#head-category ul.bars li .label").text
        select = Select(browser.find_element(By.ID, "set-category"))
        other = next(o.text for o in select.options if o.get_attribute("value") not in ("", top))
        select.select_by_visible_text(other)
        browser.find_element(By.ID, "save-category").click()
        _wait(lambda: _text(browser, "#current-category") == other, what="the corrected label")
        assert "修改" in _text(browser, "#history")

        # Download the 交办 list from the queue and read it back.
        browser.get(f"{base}/queue?year=2024")
        rows = download_assignments(browser)
        by_id = {r[0]: r for r in rows[1:]}
        assert suggested in by_id["A-001"]
        assert other in by_id["A-002"]
    shutil.rmtree(browser.downloads, ignore_errors=True)
