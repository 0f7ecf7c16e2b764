"""Decisions: accept, correct, merge; append-only; current labels derived from decisions."""

from __future__ import annotations

import pytest
from service_helpers import api_csrf, csrf_of


def _post(c, pid, body):
    return c.post(f"/api/proposals/2024/{pid}/decisions", json=body, headers=api_csrf(c))


def test_accept_then_correct(imported):
    rev = imported.client_for("rev")
    r = _post(rev, "A-002", {"action": "accept"})
    assert r.status_code == 201
    assert {d["field"] for d in r.json()["decisions"]} == {"category", "main_unit", "co_units"}
    p = r.json()["proposal"]
    assert (
        p["status"] == "reviewed" and p["category"] == "生态环境" and p["co_units"] == ["市水利局"]
    )
    r = _post(rev, "A-002", {"action": "set", "field": "main_unit", "value": "市水利局"})
    d = r.json()["decisions"][0]
    assert (
        d["previous_value"] == "市生态环境局"
        and d["new_value"] == "市水利局"
        and d["user"] == "rev"
    )
    assert len(rev.get("/api/proposals/2024/A-002/decisions").json()) == 4
    assert rev.get("/api/decisions?year=2024").json()[-1]["new_value"] == "市水利局"


def test_bad_decisions_are_clear_errors(imported):
    rev = imported.client_for("rev")
    assert (
        _post(rev, "A-002", {"action": "set", "field": "category", "value": "  "}).status_code
        == 422
    )
    assert _post(rev, "A-002", {"action": "merge", "value": "NOPE"}).status_code == 422
    assert _post(rev, "A-002", {"action": "merge", "value": "A-002"}).status_code == 422
    assert _post(rev, "A-002", {"action": "explode"}).status_code == 422
    assert _post(rev, "ZZZ", {"action": "accept"}).status_code == 404


def test_merge_puts_both_in_one_group(imported):
    rev = imported.client_for("rev")
    r = _post(rev, "A-005", {"action": "merge", "value": "A-002"})
    assert r.status_code == 201
    groups = {
        pid: rev.get(f"/api/proposals/2024/{pid}").json()["merge_group"]
        for pid in ("A-002", "A-005")
    }
    assert groups == {"A-002": "2024/A-002", "A-005": "2024/A-002"}
    _post(rev, "A-005", {"action": "unmerge"})
    assert rev.get("/api/proposals/2024/A-005").json()["merge_group"] is None


def test_page_accept_and_correct(imported):
    rev = imported.client_for("rev")
    page = rev.get("/proposals/2024/A-003")
    assert page.status_code == 200 and "一键采纳建议" in page.text
    token = csrf_of(page.text)
    r = rev.post("/proposals/2024/A-003/decide", data={"csrf_token": token, "action": "accept"})
    assert r.status_code == 200 and "已审核" in r.text
    r = rev.post(
        "/proposals/2024/A-003/decide",
        data={
            "csrf_token": token,
            "action": "set",
            "field": "co_units",
            "value": "市民政局、市财政局",
        },
    )
    assert rev.get("/api/proposals/2024/A-003").json()["co_units"] == ["市民政局", "市财政局"]


def test_decisions_are_append_only(imported):
    from sqlalchemy import text

    from service.models import AppendOnlyError, Decision

    rev = imported.client_for("rev")
    _post(rev, "A-001", {"action": "accept", "field": "category"})
    with imported.state.factory() as s:
        d = s.query(Decision).first()
        d.note = "rewritten"
        with pytest.raises(AppendOnlyError):
            s.commit()
        s.rollback()
        s.delete(s.query(Decision).first())
        with pytest.raises(AppendOnlyError):
            s.commit()
    # The database itself refuses too (a trigger), whatever client writes to it.
    with imported.state.engine.connect() as conn:
        for sql in ("UPDATE decisions SET note = 'x'", "DELETE FROM decisions"):
            with pytest.raises(Exception, match="append-only"):
                conn.execute(text(sql))
            conn.rollback()


def test_queue_filters(imported):
    rev = imported.client_for("rev")
    _post(rev, "A-001", {"action": "accept"})
    q = lambda **kw: rev.get("/api/proposals", params={"year": 2024, **kw}).json()  # noqa: E731
    assert q()["total"] == 5
    assert [i["id"] for i in q(status="reviewed")["items"]] == ["A-001"]
    assert q(status="pending")["total"] == 4
    assert [i["id"] for i in q(category="工业经济")["items"]] == ["A-001"]
    assert q(unit="市工业和信息化局")["total"] == 1
    assert q(needs_attention=True)["total"] >= 1  # the exact duplicates
    assert q(q="河湖")["total"] == 2
    assert q(sort="confidence", descending=True)["total"] == 5
    assert rev.get("/api/proposals", params={"year": 2024, "sort": "bogus"}).status_code == 422
    page = rev.get("/queue", params={"year": 2024, "attention": "1"})
    assert page.status_code == 200 and "疑似重复" in page.text
