"""The draft check (提案预审): API, page, the member role's limits, nothing stored or logged."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest
from service_helpers import PASSWORD, api_csrf, csrf_of, login

DRAFT_TITLE = "关于加强河湖生态环境保护的建议"
DRAFT_CONTENT = (
    "生态环境河湖污染水土保持流域治理工作问题突出。为此建议：一是加强河湖污染治理，"
    "完善流域生态保护措施；二是落实水土保持资金政策，开展河湖治理工作。"
)


def _member(service: Any, name: str = "wei") -> Any:
    from service.auth import create_user

    with service.state.factory() as s, s.begin():
        create_user(s, name, PASSWORD, "member")
    return service.client_for(name)


def _row_counts(service: Any) -> dict[str, int]:
    from sqlalchemy import func, select

    from service.models import Base

    with service.state.factory() as s:
        return {
            t.name: int(s.scalar(select(func.count()).select_from(t)) or 0)
            for t in Base.metadata.sorted_tables
        }


def test_api_check_finds_the_repeat_and_stores_nothing(
    imported: Any, caplog: pytest.LogCaptureFixture
) -> None:
    member = _member(imported)
    before = _row_counts(imported)
    with caplog.at_level(logging.DEBUG):
        r = member.post(
            "/api/drafts/check",
            json={"title": DRAFT_TITLE, "content": DRAFT_CONTENT},
            headers=api_csrf(member),
        )
    assert r.status_code == 200, r.text
    body = r.json()
    top = [s["id"] for s in body["similar"][:3]]
    assert {"A-002", "A-005"} & set(top), top
    first = body["similar"][0]
    assert set(first) >= {"year", "title", "main_unit", "state", "state_text"}
    assert first["state_text"] in ("已立案", "已并案", "已答复")
    # The proposer ("某委员" in the fixture) never reaches a member.
    assert "某委员" not in r.text and "proposer" not in r.text
    assert body["suggestion"]["category"] and 0.0 <= body["suggestion"]["confidence"] <= 1.0
    assert body["length"]["usual"][0] <= body["length"]["usual"][1]
    # Nothing is stored; the log says a check happened and holds none of its words.
    assert _row_counts(imported) == before
    logged = "\n".join(rec.getMessage() for rec in caplog.records)
    assert "draft check" in logged
    for piece in (DRAFT_TITLE, DRAFT_CONTENT[:12], "河湖污染治理"):
        assert piece not in logged


def test_form_remarks_come_with_their_sentences(service: Any) -> None:
    rev = service.client_for("rev")
    r = rev.post(
        "/api/drafts/check",
        json={"title": "河道的事", "content": "河道很脏。希望管一管。"},
        headers=api_csrf(rev),
    )
    assert r.status_code == 200, r.text
    remarks = {x["code"]: x for x in r.json()["form"]}
    assert {"title_shape", "no_suggestions", "no_points", "too_short"} <= set(remarks)
    assert remarks["title_shape"]["sentences"] == ["河道的事"]
    assert "希望管一管。" in remarks["no_suggestions"]["sentences"]


def test_empty_and_oversized_drafts_get_a_clear_message(service: Any) -> None:
    rev = service.client_for("rev")
    r = rev.post("/api/drafts/check", json={"title": " ", "content": ""}, headers=api_csrf(rev))
    assert r.status_code == 422 and "案由" in r.json()["detail"]
    r = rev.post("/api/drafts/check", json={"content": "字" * 20_001}, headers=api_csrf(rev))
    assert r.status_code == 422


def _routes(routes: list[Any]) -> list[Any]:
    """Every APIRoute, inside included routers too (the routers add no prefix of their own)."""
    from fastapi.routing import APIRoute

    out = []
    for r in routes:
        if isinstance(r, APIRoute):
            out.append(r)
        elif hasattr(r, "original_router"):
            out.extend(_routes(r.original_router.routes))
        elif hasattr(r, "routes") and not hasattr(r, "app"):
            out.extend(_routes(r.routes))
    return out


def test_member_is_refused_everything_but_the_draft_check(imported: Any) -> None:
    member = _member(imported)
    anonymous = imported.client
    allowed = {"/drafts", "/api/drafts/check", "/api/me", "/account/password", "/logout"}
    checked = 0
    for route in _routes(imported.app.routes):
        if route.path in allowed:
            continue
        path = route.path
        for name in route.param_convertors:
            path = path.replace("{" + name + "}", "2024" if name == "year" else "1")
        method = sorted(route.methods)[0]
        anon = anonymous.request(method, path, follow_redirects=False)
        needs_sign_in = anon.status_code == 401 or (
            anon.status_code in (302, 303, 307) and "/login" in anon.headers.get("location", "")
        )
        if not needs_sign_in:
            continue  # public (sign-in page, health): nothing of the office's data
        r = member.request(method, path, follow_redirects=False, headers=api_csrf(member))
        if path in ("/", "/queue") and method == "GET":
            assert r.status_code == 303 and r.headers["location"] == "/drafts"
        else:
            assert r.status_code == 403, (method, path, r.status_code)
        checked += 1
    assert checked > 20
    # A member's bearer token is held to the same limits.
    token = imported.token_for("wei")
    r = anonymous.get("/api/proposals", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403
    r = anonymous.post(
        "/api/drafts/check",
        json={"title": DRAFT_TITLE, "content": DRAFT_CONTENT},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200


def test_page_checks_a_pasted_draft_and_a_docx(imported: Any) -> None:
    import docx

    member = _member(imported)
    page = member.get("/drafts")
    assert page.status_code == 200 and "提案预审" in page.text
    assert "审核队列" not in page.text  # a member's menu leads nowhere else
    r = member.post(
        "/drafts",
        data={"title": DRAFT_TITLE, "content": DRAFT_CONTENT, "csrf_token": csrf_of(page.text)},
    )
    assert r.status_code == 200, r.text
    assert "已有相似提案" in r.text and "格式检查" in r.text and "某委员" not in r.text

    document = docx.Document()
    document.add_paragraph("关于推进学校课程建设的建议")
    document.add_paragraph("教育学校学生教师课程建设完善。建议：一是完善课程；二是加强教师培训。")
    buf = io.BytesIO()
    document.save(buf)
    r = member.post(
        "/drafts",
        data={"csrf_token": csrf_of(page.text)},
        files={"file": ("draft.docx", buf.getvalue())},
    )
    assert r.status_code == 200, r.text
    assert 'value="关于推进学校课程建设的建议"' in r.text
    r = member.post(
        "/drafts", data={"csrf_token": csrf_of(page.text)}, files={"file": ("a.pdf", b"%PDF")}
    )
    assert r.status_code == 422 and "只支持 .txt 和 .docx" in r.text


def test_page_refuses_a_form_without_csrf(service: Any) -> None:
    c = service.client_for("view")
    assert c.post("/drafts", data={"title": DRAFT_TITLE}).status_code == 403


def test_member_login_lands_on_the_draft_page(service: Any) -> None:
    from fastapi.testclient import TestClient

    _member(service, "wei2")
    c = TestClient(service.app)
    login(c, "wei2")
    r = c.get("/", follow_redirects=True)
    assert r.status_code == 200 and "提案预审" in r.text


def _store_demo(state: Any) -> None:
    """The demo's 2022–2023 proposals with cached vectors, and its 2024 reference topics."""
    from pathlib import Path

    from sqlalchemy import select

    from model.records import read_proposals
    from model.topics import read_topics
    from service.analysis import vectors_for
    from service.bootstrap import store_topics
    from service.models import DuplicateGroup, ImportBatch, Proposal, User

    demo = Path(__file__).resolve().parents[2] / "data" / "demo"
    rows = [p for p in read_proposals(demo / "proposals.csv") if p.year < 2024]
    with state.factory() as s, s.begin():
        admin = s.scalar(select(User).where(User.username == "admin"))
        batch = ImportBatch(
            file_name="demo.csv", sha256="0" * 64, rows=len(rows), added=len(rows),
            updated=0, unchanged=0, user_id=admin.id,
        )  # fmt: skip
        s.add(batch)
        s.flush()
        made = [
            Proposal(
                year=p.year,
                pid=p.id,
                title=p.title,
                content=p.content,
                proposer="某委员",
                category=p.category,
                main_unit=p.main_unit,
                co_units=list(p.co_units),
                batch_id=batch.id,
                extra={"答复": "已答复"} if p.id == "2022-001" else {},
            )  # fmt: skip
            for p in rows
        ]
        s.add_all(made)
        s.flush()
        by_pid = {p.pid: p for p in made}
        s.add(
            DuplicateGroup(
                year=2023,
                label="G-2022-002",
                representative_id=by_pid["2022-002"].id,
                members=[by_pid["2022-002"].id, by_pid["2023-002"].id],
            )
        )
        vectors_for(s, state.encoders.get(), made)
        store_topics(s, 2024, read_topics(demo / "topics_2024.csv"))


@pytest.mark.browser
def test_browser_member_checks_a_draft(
    tmp_path: Any, baseline_bundle: Any, tiny_backbone_dir: Any
) -> None:
    """A member signs in, lands on 提案预审, pastes a draft and reads the check, in Chinese.

    The screenshot goes to ``$TIAN_SCREENSHOTS`` (docs/draft_check.png was taken with
    ``TIAN_DRAFT_ENCODER=e5-small`` and ``TIAN_DRAFT_MODEL`` set to a bundle trained on the
    demo's 2022–2023, so that its similar proposals and units are the real ones).
    """
    import os
    from pathlib import Path

    from service_helpers import live_server
    from test_browser_ux import CHROMIUM, DRIVER, ENGLISH, _visible_text

    if not (CHROMIUM.exists() and DRIVER.exists()):
        pytest.skip("needs Debian's chromium and chromium-driver (run .ci/browser.sh)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service as DriverService
    from selenium.webdriver.common.by import By

    from model.records import read_proposals
    from service.auth import create_user

    demo = Path(__file__).resolve().parents[2] / "data" / "demo"
    draft = next(p for p in read_proposals(demo / "proposals.csv") if p.id == "2024-003")
    bundle = Path(os.environ.get("TIAN_DRAFT_MODEL") or baseline_bundle)
    encoder = os.environ.get("TIAN_DRAFT_ENCODER") or str(tiny_backbone_dir)
    shots = Path(os.environ.get("TIAN_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1900"):
        options.add_argument(arg)
    options.add_argument("--disable-dev-shm-usage")
    options.add_argument("--lang=zh-CN")  # the file picker's own button in Chinese too
    driver = webdriver.Chrome(options=options, service=DriverService(str(DRIVER)))
    driver.implicitly_wait(20)
    try:
        with live_server(tmp_path, bundle, encoder) as (base, state):
            _store_demo(state)
            with state.factory() as s, s.begin():
                create_user(s, "wei", PASSWORD, "member")
            driver.get(f"{base}/login")
            driver.find_element(By.NAME, "username").send_keys("wei")
            driver.find_element(By.NAME, "password").send_keys(PASSWORD)
            driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
            from selenium.webdriver.support.ui import WebDriverWait

            # The sign-in redirects a member to 提案预审; wait for the navigation to finish.
            WebDriverWait(driver, 30).until(lambda d: d.current_url.endswith("/drafts"))
            driver.find_element(By.ID, "draft-title").send_keys(draft.title)
            driver.find_element(By.ID, "draft-content").send_keys(draft.content)
            driver.find_element(By.ID, "draft-submit").click()
            similar = driver.find_element(By.ID, "draft-similar").text
            driver.save_screenshot(str(shots / "draft_check.png"))
            text = _visible_text(driver)
    finally:
        driver.quit()
    assert "格式检查" in text and "已有相似提案" in text and "对应的参考题目" in text
    assert "某委员" not in text  # never the proposer
    assert "2022" in similar and ("已立案" in similar or "已并案" in similar)
    assert not ENGLISH.search(text), ENGLISH.search(text)
    assert "审核队列" not in text


def test_the_vector_cache_sees_new_and_re_encoded_proposals(imported: Any) -> None:
    import numpy as np
    from sqlalchemy import select

    from service.drafts import _past_vectors
    from service.models import Embedding

    name = imported.state.encoders.get().name
    with imported.state.factory() as s:
        ids, matrix = _past_vectors(s, name)
        assert len(ids) == 5 and matrix.shape[0] == 5
        assert _past_vectors(s, name)[1] is matrix  # unchanged: served from the cache
    with imported.state.factory() as s, s.begin():
        row = s.scalar(select(Embedding).where(Embedding.proposal_id == ids[0]))
        row.vector = np.ones(matrix.shape[1], dtype=np.float32).tobytes()
        row.text_hash = "changed"
    with imported.state.factory() as s:
        ids2, matrix2 = _past_vectors(s, name)
    assert ids2 == ids and np.allclose(matrix2[0], 1.0)
