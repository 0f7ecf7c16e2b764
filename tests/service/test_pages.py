"""The review pages: queue filters, the proposal page's parts, models admin, re-analysis."""

from __future__ import annotations

from service_helpers import csrf_of


def test_queue_filters_sort_and_counts(imported):
    rev = imported.client_for("rev")
    page = rev.get("/queue?year=2024")
    assert page.status_code == 200
    assert "共 5 件" in page.text and "A-001" in page.text
    assert 'id="export-assignments"' in page.text
    only = rev.get("/queue?year=2024&q=A-003")
    assert "A-003" in only.text and "A-001" not in only.text
    sorted_desc = rev.get("/queue?year=2024&sort=id&desc=1").text
    assert sorted_desc.index("A-005") < sorted_desc.index("A-001")
    # Nonsense filter values are ignored or rejected cleanly, never a server error.
    assert rev.get("/queue?year=2024&min_confidence=abc&sort=nope").status_code == 200
    assert rev.get("/queue?year=99999999999999999999").status_code == 422


def test_proposal_page_shows_bars_duplicates_and_label_choices(imported):
    rev = imported.client_for("rev")
    html = rev.get("/proposals/2024/A-002").text
    assert 'class="bars"' in html and 'style="width:' in html  # probability bars
    assert 'id="set-category"' in html and "<option value=" in html  # labels of the model
    # are identical: side by side with the overlap highlighted.
    assert "A-005" in html and "<mark>" in html
    assert 'id="history"' in html


def test_abstain_note_in_plain_words():
    from service.pages.review import abstain_notes

    notes = abstain_notes(
        {
            "abstain": {
                "category": {"flag": True, "prediction_set": ["甲", "乙"], "coverage": 0.95},
                "main_unit": {"flag": False, "prediction_set": ["丙"], "coverage": 0.9},
                "co_units": {"suggested_above": 0.5},
            }
        }
    )
    assert notes == {"category": "模型在95%置信水平下无法确定唯一类别，候选：甲、乙。请人工判断。"}
    assert abstain_notes(None) == {}


def test_highlight_segments_merge_and_clip():
    from service.highlight import segments

    assert segments("abcdefgh", [(5, 7), (1, 3), (2, 4), (6, 99), (3, 3)]) == [
        ("a", False),
        ("bcd", True),
        ("e", False),
        ("fgh", True),
    ]
    assert segments("", [(0, 2)]) == []


def test_correct_and_merge_on_the_page(imported):
    rev = imported.client_for("rev")
    token = csrf_of(rev.get("/proposals/2024/A-002").text)
    url = "/proposals/2024/A-002/decide"
    r = rev.post(
        url, data={"csrf_token": token, "action": "set", "field": "category", "value": "其他"}
    )
    assert r.status_code == 200 and 'id="current-category">其他<' in r.text
    r = rev.post(url, data={"csrf_token": token, "action": "merge", "value": "A-005"})
    assert "2024/A-005" in r.text
    # Clearing the co-units is allowed (an empty list), and is recorded.
    r = rev.post(url, data={"csrf_token": token, "action": "set", "field": "co_units", "value": ""})
    assert r.status_code == 200
    assert rev.get("/api/proposals/2024/A-002").json()["co_units"] == []
    # A bad action shows the error on the page, not a crash.
    r = rev.post(url, data={"csrf_token": token, "action": "explode"})
    assert r.status_code == 422 and "操作未完成" in r.text
    # Without the CSRF token nothing happens.
    assert rev.post(url, data={"action": "accept"}).status_code == 403


def test_models_page_promote_and_rollback(imported, baseline_bundle_2):
    from model.registry import ModelRegistry

    ModelRegistry(imported.state.runtime.registry_root).add(baseline_bundle_2, version="toy-2")
    admin = imported.client_for("admin")
    page = admin.get("/models")
    assert page.status_code == 200 and "toy-2" in page.text
    token = csrf_of(page.text)
    r = admin.post("/models/toy-2/promote", data={"csrf_token": token})
    assert r.status_code == 200 and 'id="live-model">toy-2<' in r.text
    r = admin.post("/models/rollback", data={"csrf_token": token})
    assert 'id="live-model">toy-1<' in r.text
    r = admin.post("/models/nope/promote", data={"csrf_token": token})
    assert r.status_code == 409 and "无法启用" in r.text
    # Reviewers see the page but cannot promote; viewers cannot re-analyse.
    rev = imported.client_for("rev")
    assert rev.post("/models/toy-2/promote", data={"csrf_token": token}).status_code == 403
    view = imported.client_for("view")
    assert "启用</button>" not in view.get("/models").text
    view_token = csrf_of(view.get("/models").text)
    assert view.post("/analyse", data={"csrf_token": view_token, "year": "2024"}).status_code == 403


def test_reanalyse_from_the_page(imported):
    rev = imported.client_for("rev")
    token = csrf_of(rev.get("/models").text)
    r = rev.post("/analyse", data={"csrf_token": token, "year": "2024"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/jobs/")
    assert rev.post("/analyse", data={"csrf_token": token, "year": "x"}).status_code == 422


def test_topics_page(imported):
    rev = imported.client_for("rev")
    r = rev.post(
        "/api/topics",
        data={"year": "2024"},
        files={"file": ("t.csv", "topic_id,topic\nT1,关于河湖生态环境保护的研究\n".encode())},
        headers={"X-CSRF-Token": rev.get("/api/me").json()["csrf_token"]},
    )
    assert r.status_code == 201, r.text
    imported.state.jobs.wait_idle()
    page = rev.get("/topics?year=2024")
    assert page.status_code == 200 and "T1" in page.text and 'id="topics-covered"' in page.text
