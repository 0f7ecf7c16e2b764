"""In headless Chromium: a file with bad rows is shown as 未导入 with each reason, in Chinese."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from service_helpers import TOY_ROWS, live_server, proposals_csv
from test_browser import _text, _wait, browser, pytestmark, sign_in  # noqa: F401  (fixture and marks)


def test_rejected_import_page_in_chromium(
    browser: Any,  # noqa: F811
    tmp_path: Path,
    baseline_bundle: Path,
    tiny_backbone_dir: Path,
) -> None:
    from selenium.webdriver.common.by import By

    upload = tmp_path / "有错误.csv"
    rows = [*TOY_ROWS[:2], ("A-001", "关于重复的建议", "重复"), ("A-009", "", "只有内容")]
    upload.write_bytes(proposals_csv(rows))
    with live_server(tmp_path, baseline_bundle, "none") as (base, state):
        sign_in(browser, base)
        browser.get(f"{base}/import")
        browser.find_element(By.NAME, "file").send_keys(str(upload))
        browser.find_element(By.CSS_SELECTOR, "form.card button[type=submit]").click()
        _wait(lambda: "/jobs/" in browser.current_url, what="the progress page")
        status = browser.find_element(By.ID, "job-status")
        _wait(lambda: status.get_attribute("data-status") == "failed", what="the rejection")
        _wait(lambda: "未导入" in _text(browser, "#job-result"), what="the reasons")
        assert _text(browser, "#job-status") == "未导入"
        assert not browser.find_element(By.ID, "job-bar").is_displayed()  # no "0 / 0 行"
        result = _text(browser, "#job-result")
        assert "第 4 行 提案号" in result and "重复" in result
        assert "第 5 行 案由" in result and "案由为空（案由必填）" in result
        body = _text(browser, "main")
        assert not re.search(r"[A-Za-z]+ [A-Za-z]+ [A-Za-z]+", body), body  # no English sentence
