"""The reviewer's pages in headless Chromium: no English sentence on the queue, a proposal, the
并案 page, the topic page or the models page; screenshots for a check by eye.

Screenshots go to ``$TIAN_SCREENSHOTS`` when set (else the test's temporary folder).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_helpers import PASSWORD, live_server
from test_ux_pass import ROWS, _plant_group, add_proposals, add_suggestion

CHROMIUM = Path("/usr/bin/chromium")
DRIVER = Path("/usr/bin/chromedriver")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and DRIVER.exists()),
        reason="needs Debian's chromium and chromium-driver (run .ci/browser.sh)",
    ),
]

# Three or more English words in a row is a sentence a reviewer should not see. Commands in
# <code> (tian models add) are left out before the check.
ENGLISH = re.compile(r"\b[A-Za-z]{2,}(?:[ ,.'-]+[A-Za-z]{2,}){2,}")


@pytest.fixture
def browser() -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1440,1100"):
        options.add_argument(arg)
    options.add_argument("--disable-dev-shm-usage")
    driver = webdriver.Chrome(options=options, service=DriverService(str(DRIVER)))
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


def _visible_text(driver: Any) -> str:
    return str(
        driver.execute_script(
            "const b = document.body.cloneNode(true);"
            "b.querySelectorAll('code, script, style').forEach(e => e.remove());"
            "return b.innerText;"
        )
    )


def test_pages_are_chinese_and_look_right(
    browser: Any, tmp_path: Path, baseline_bundle: Path, tiny_backbone_dir: Path
) -> None:
    from selenium.webdriver.common.by import By

    from model.topics import DEFAULT_WEIGHTS
    from model.topics import Topic as ModelTopic
    from service.bootstrap import store_topics
    from service.models import Topic, TopicMatch

    shots = Path(os.environ.get("TIAN_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    with live_server(tmp_path, baseline_bundle, str(tiny_backbone_dir)) as (base, state):
        ids = add_proposals(state, ROWS)
        _plant_group(state, ids)
        for pid in ids:
            add_suggestion(
                state,
                ids[pid],
                {
                    "category": [
                        {"label": "生态环境", "score": 0.97},
                        {"label": "教育科技", "score": 0.02},
                    ],
                    "main_unit": [
                        {"label": "市生态环境局", "score": 0.6},
                        {"label": "市水利局", "score": 0.3},
                    ],
                    "co_units": [{"label": "市水利局", "score": 0.2}],
                    "abstain": {
                        "category": {
                            "flag": False,
                            "prediction_set": ["生态环境"],
                            "coverage": 0.95,
                        },
                        "main_unit": {
                            "flag": True,
                            "prediction_set": ["市生态环境局", "市水利局"],
                            "coverage": 0.95,
                        },
                        "co_units": {"suggested_above": 0.05},
                    },
                },
            )
        with state.factory() as s, s.begin():
            store_topics(
                s,
                2024,
                [
                    ModelTopic("T01", "关于推进白河流域水环境综合治理的研究"),
                    ModelTopic("T02", "关于促进义务教育优质均衡发展的研究"),
                ],
            )
        with state.factory() as s, s.begin():
            rows = {t.topic_id: t.id for t in s.query(Topic)}
            for pid in ("B-001", "B-002"):
                s.add(
                    TopicMatch(
                        proposal_id=ids[pid],
                        topic_row_id=rows["T01"],
                        score=DEFAULT_WEIGHTS.threshold + 0.3,
                        rank=1,
                    )
                )

        browser.get(f"{base}/login")
        browser.find_element(By.NAME, "username").send_keys("admin")
        browser.find_element(By.NAME, "password").send_keys(PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        pages = {
            "queue": "/queue?year=2024",
            "proposal": "/proposals/2024/B-001",
            "groups": "/groups?year=2024",
            "topics": "/topics?year=2024",
            "models": "/models",
        }
        for name, path in pages.items():
            browser.get(base + path)
            browser.find_element(By.CSS_SELECTOR, "main h1")
            text = _visible_text(browser)
            assert not ENGLISH.findall(text), (name, ENGLISH.findall(text))
            height = browser.execute_script("return document.body.scrollHeight")
            browser.set_window_size(1440, min(max(int(height) + 40, 800), 4000))
            browser.save_screenshot(str(shots / f"{name}.png"))
        # The queue's duplicates card leads to the duplicates filter; the 并案 page merges.
        browser.get(f"{base}/queue?year=2024")
        browser.find_element(By.ID, "card-duplicates").click()
        rows_shown = browser.find_elements(By.CSS_SELECTOR, "table.queue tbody tr")
        assert len(rows_shown) == 2
        browser.get(f"{base}/groups?year=2024")
        browser.find_element(By.CSS_SELECTOR, "button.merge").click()
        assert "已保存" in browser.find_element(By.CSS_SELECTOR, "p.ok-msg").text
        browser.save_screenshot(str(shots / "groups_merged.png"))
