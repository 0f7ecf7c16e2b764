"""A newcomer's first session in headless Chromium, as one path: sign in, review ten proposals on
their pages, import a file with a bad row, export the 交办 list.

On every page visited: no English sentence (three or more English words in a row outside
``<code>``) and no value lost (the co-units the import gave are still there after 一键采纳, after
the rejected import and in the exported workbook). With ``$TIAN_SCREENSHOTS`` set, a full-page
screenshot of each page is saved there, for a check by eye.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest
from service_helpers import live_server, proposals_csv
from test_browser import (  # noqa: F401
    CHROMIUM,
    DRIVER,
    _text,
    _wait,
    browser,
    download_assignments,
    sign_in,
)
from test_browser_ux import ENGLISH, _visible_text

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and DRIVER.exists()),
        reason="needs Debian's chromium and chromium-driver (run .ci/browser.sh)",
    ),
]

_THEMES = [
    ("关于推进工业园区制造企业发展的建议", "工业制造企业园区发展改革推进建设工作落实"),
    ("关于加强河湖生态环境保护的建议", "生态环境河湖污染水土保持流域治理工作"),
    ("关于提升基层医院医疗卫生服务的建议", "医疗卫生医院健康疾病药品服务提升"),
    ("关于完善学校教育课程的建议", "教育学校学生教师课程建设完善"),
]
# Co-units given by the import, by proposal: a suggestion must never erase them.
IMPORTED_CO_UNITS = {"N-002": "市水利局、市民政局", "N-005": "市财政局", "N-009": "市民政局"}
REVIEWED = [f"N-{i:03d}" for i in range(1, 11)]


def _rows() -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for i in range(1, 13):
        pid = f"N-{i:03d}"
        title, content = _THEMES[i % len(_THEMES)]
        rows.append((pid, title, f"{content}第{i}条", "", "", IMPORTED_CO_UNITS.get(pid, "")))
    return rows


def _bad_file() -> bytes:
    """Three rows; the second (file row 3) has a year that is not a year."""
    good = proposals_csv([("M-001", *_THEMES[0]), ("M-002", *_THEMES[1]), ("M-003", *_THEMES[2])])
    lines = good.decode("utf-8").splitlines(keepends=True)
    lines[2] = lines[2].replace(",2024,", ",明年,", 1)
    return "".join(lines).encode("utf-8")


class Visited:
    """Checks every page the path shows and remembers what it saw."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver
        self.pages: list[str] = []

    def check(self, what: str) -> str:
        text = _visible_text(self.driver)
        english = ENGLISH.findall(text)
        assert not english, (what, self.driver.current_url, english)
        self.pages.append(what)
        shots = os.environ.get("TIAN_SCREENSHOTS")
        if shots:
            shot = self.driver.execute_cdp_cmd(
                "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
            )
            name = f"newcomer_{len(self.pages):02d}_{what.replace(' ', '_')}.png"
            (Path(shots) / name).write_bytes(base64.b64decode(shot["data"]))
        return text


def _import(driver: Any, base: str, path: Path) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/import")
    driver.find_element(By.NAME, "file").send_keys(str(path))
    driver.find_element(By.CSS_SELECTOR, "form.card button[type=submit]").click()
    _wait(lambda: "/jobs/" in driver.current_url, what="the progress page")
    status = driver.find_element(By.ID, "job-status")
    _wait(
        lambda: status.get_attribute("data-status") in ("done", "failed"),
        what="the import job",
    )


def _accept_all(driver: Any, visited: Visited, pid: str) -> str:
    """一键采纳 on the proposal's page, confirming (keeping given values) when asked."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "accept-all").click()
    # One selector for both outcomes: an absent id would cost the implicit wait.
    shown = driver.find_element(By.CSS_SELECTOR, "#confirm-accept, #flash")
    if shown.get_attribute("id") == "confirm-accept":
        visited.check(f"{pid} confirmation")
        assert _text(driver, "#current-category") == "—", "saved before the reviewer confirmed"
        driver.find_element(By.ID, "confirm-accept-keep").click()
        _wait(lambda: driver.find_elements(By.ID, "flash"), what=f"the saved message of {pid}")
    return _text(driver, "#flash")


def test_newcomer_path_in_chromium(
    browser: Any,  # noqa: F811
    tmp_path: Path,
    baseline_bundle: Path,
    tiny_backbone_dir: Path,
) -> None:
    from selenium.webdriver.common.by import By

    good, bad = tmp_path / "2024年提案.csv", tmp_path / "有错的提案.csv"
    good.write_bytes(proposals_csv(_rows()))
    bad.write_bytes(_bad_file())
    with live_server(tmp_path, baseline_bundle, str(tiny_backbone_dir)) as (base, state):
        visited = Visited(browser)
        browser.get(f"{base}/login")
        visited.check("sign-in")
        sign_in(browser, base)
        visited.check("empty queue")

        _import(browser, base, good)
        assert _text(browser, "#job-status") == "已完成"
        assert "新增 12" in _text(browser, "#job-result")
        visited.check("import done")
        state.jobs.wait_idle()  # suggestions, duplicates and topics

        browser.get(f"{base}/queue?year=2024")
        visited.check("queue")
        assert len(browser.find_elements(By.CSS_SELECTOR, "table.queue tbody tr")) == 12

        # Review ten proposals on their pages.
        accepted: dict[str, str] = {}
        for pid in REVIEWED:
            browser.get(f"{base}/proposals/2024/{pid}")
            assert "本年度尚未导入参考题目" in visited.check(pid)  # not "no match"
            assert _text(browser, "#current-co-units") == IMPORTED_CO_UNITS.get(pid, "—")
            message = _accept_all(browser, visited, pid)
            assert message.startswith("已保存"), (pid, message)
            visited.check(f"{pid} saved")
            category = _text(browser, "#current-category")
            assert category != "—", pid
            accepted[pid] = category
            if pid in IMPORTED_CO_UNITS:  # kept, and the message says so
                assert _text(browser, "#current-co-units") == IMPORTED_CO_UNITS[pid]
                assert "保留原有的协办单位" in message, message

        # The reviewed proposals no longer wait in the queue.
        browser.get(f"{base}/queue?year=2024&status=pending")
        visited.check("pending queue")
        pending = {
            e.text
            for e in browser.find_elements(By.CSS_SELECTOR, "table.queue tbody td:first-child a")
        }
        assert pending == {"N-011", "N-012"}, pending

        # A file with a bad row: refused whole, in Chinese, naming the row and the column.
        _import(browser, base, bad)
        assert _text(browser, "#job-status") == "未导入"
        text = visited.check("rejected import")
        assert "没有保存任何内容" in text
        assert "第 3 行" in text and "年度" in text and "不是有效的年份" in text
        assert not browser.find_element(By.ID, "job-bar").is_displayed()  # no "0 / 0 行"
        browser.get(f"{base}/queue?year=2024")
        visited.check("queue after the rejected import")
        shown = {
            e.text
            for e in browser.find_elements(By.CSS_SELECTOR, "table.queue tbody td:first-child a")
        }
        assert len(shown) == 12 and not any(p.startswith("M-") for p in shown)

        # Export the 交办 list: every reviewed label and every imported co-unit is in it.
        rows = download_assignments(browser)
        assert rows[0][:5] == ("提案号", "案由", "类别", "主办单位", "协办单位")
        by_id = {r[0]: r for r in rows[1:]}
        assert set(by_id) == {f"N-{i:03d}" for i in range(1, 13)}
        for pid, category in accepted.items():
            assert by_id[pid][2] == category and by_id[pid][3], pid
            assert by_id[pid][6] == "已审核", pid
        for pid, co_units in IMPORTED_CO_UNITS.items():
            assert by_id[pid][4] == co_units, pid
        assert by_id["N-011"][6] == "待审核"

        # The other pages of the menu, on what the analysis found.
        for name in ("groups", "topics", "models"):
            browser.get(f"{base}/{name}?year=2024")
            text = visited.check(name)
            if name == "topics":  # no reference topics yet: nothing is waiting to be matched
                assert "尚未导入参考题目" in text and "尚未完成题目匹配" not in text
    # sign-in, queues, the import pages and each reviewed proposal before and after saving
    assert len(visited.pages) >= 10 + 2 * len(REVIEWED)
