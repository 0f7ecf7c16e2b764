"""Headless Chromium: /docs works offline under the CSP, and 一键采纳 asks, keeps imported
co-units and says what it saved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from service_helpers import TOY_ROWS, live_server, proposals_csv
from test_browser import CHROMIUM, DRIVER, _text, _wait, browser, sign_in  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and DRIVER.exists()),
        reason="needs Debian's chromium and chromium-driver (run .ci/browser.sh)",
    ),
]


def test_docs_and_accept_all_in_chromium(
    browser: Any,  # noqa: F811
    tmp_path: Path,
    baseline_bundle: Path,
    tiny_backbone_dir: Path,
) -> None:
    from selenium.webdriver.common.by import By

    rows = [*TOY_ROWS, ("B-001", TOY_ROWS[1][1], TOY_ROWS[1][2], "", "", "市民政局、市财政局")]
    upload = tmp_path / "提案.csv"
    upload.write_bytes(proposals_csv(rows))
    with live_server(tmp_path, baseline_bundle, str(tiny_backbone_dir)) as (base, state):
        # Swagger UI renders from installed files, with the strict CSP in force.
        browser.get(f"{base}/docs")
        _wait(
            lambda: (
                "tian"
                in browser.execute_script(
                    "const t = document.querySelector('.swagger-ui .info .title');"
                    "return t ? t.textContent : '';"
                )
            ),
            what="Swagger UI",
        )
        sign_in(browser, base)
        browser.get(f"{base}/import")
        browser.find_element(By.NAME, "file").send_keys(str(upload))
        browser.find_element(By.CSS_SELECTOR, "form.card button[type=submit]").click()
        _wait(lambda: "/jobs/" in browser.current_url, what="the progress page")
        status = browser.find_element(By.ID, "job-status")  # app.js runs under the CSP
        _wait(lambda: status.get_attribute("data-status") == "done", what="the import job")
        state.jobs.wait_idle()

        browser.get(f"{base}/proposals/2024/B-001")
        bar = browser.find_element(By.CSS_SELECTOR, "#head-category ul.bars li .bar span")
        assert bar.size["width"] > 0  # inline style attributes (score bars) are allowed
        browser.find_element(By.ID, "accept-all").click()
        _wait(lambda: browser.find_elements(By.ID, "confirm-accept"), what="the confirmation")
        assert "市民政局" in _text(browser, "#confirm-accept")
        assert _text(browser, "#current-category") == "—"  # nothing saved yet
        browser.find_element(By.ID, "confirm-accept-keep").click()
        _wait(lambda: browser.find_elements(By.ID, "flash"), what="the saved message")
        assert _text(browser, "#flash").startswith("已保存")
        assert _text(browser, "#current-co-units") == "市民政局、市财政局"
        assert _text(browser, "#current-category") != "—"
