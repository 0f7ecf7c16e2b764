"""Decisions carry the value they replace (409 when stale, the real 原值
under concurrency), merges join whole groups, and 一键采纳 asks first and erases nothing."""

from __future__ import annotations

import threading

from service_helpers import TOY_ROWS, api_csrf, csrf_of, proposals_csv


def _post(c, pid, body):
    return c.post(f"/api/proposals/2024/{pid}/decisions", json=body, headers=api_csrf(c))


def _decide_in_threads(state, jobs):
    """Run ``record_decision`` calls at the same moment, one thread each."""
    from sqlalchemy import select

    from service.models import Proposal, User
    from service.review import record_decision

    barrier = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def work(pid, kwargs):
        try:
            with state.factory() as s:
                p = s.scalar(select(Proposal).where(Proposal.year == 2024, Proposal.pid == pid))
                u = s.scalar(select(User).where(User.username == "rev"))
                barrier.wait(timeout=30)
                record_decision(s, p, u, **kwargs)
                s.commit()
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=work, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors


def test_stale_previous_value_is_409(imported):
    rev = imported.client_for("rev")
    r = _post(rev, "A-001", {"action": "set", "field": "category", "value": "教育"})
    assert r.status_code == 201
    stale = {"action": "set", "field": "category", "value": "医疗卫生", "previous_value": None}
    r = _post(rev, "A-001", stale)
    assert r.status_code == 409 and "已被他人修改" in r.json()["detail"]
    r = _post(rev, "A-001", {**stale, "previous_value": "教育"})
    assert r.status_code == 201 and r.json()["decisions"][0]["previous_value"] == "教育"
    # The page sends what it showed; a stale page gets the same refusal, in Chinese.
    other = imported.client_for("rev")
    page = other.get("/proposals/2024/A-001").text
    _post(rev, "A-001", {"action": "set", "field": "category", "value": "生态环境"})
    shown = page.split('name="previous_value" value="', 1)[1].split('"', 1)[0]
    import html

    r = other.post(
        "/proposals/2024/A-001/decide",
        data={
            "csrf_token": csrf_of(page),
            "action": "set",
            "field": "category",
            "value": "工业经济",
            "previous_value": html.unescape(shown),
        },
    )
    assert r.status_code == 409 and "已被他人修改" in r.text
    assert rev.get("/api/proposals/2024/A-001").json()["category"] == "生态环境"


def test_concurrent_decisions_record_the_real_previous_value(imported):
    values = [f"类别{i:02d}" for i in range(12)]
    _decide_in_threads(
        imported.state,
        [("A-003", {"action": "set", "field_name": "category", "value": v}) for v in values],
    )
    rev = imported.client_for("rev")
    chain = [
        d for d in rev.get("/api/proposals/2024/A-003/decisions").json() if d["field"] == "category"
    ]
    assert len(chain) == len(values)
    assert chain[0]["previous_value"] is None
    for before, after in zip(chain, chain[1:], strict=False):
        assert after["previous_value"] == before["new_value"]


def test_merges_join_whole_groups(imported):
    rev = imported.client_for("rev")
    group = lambda pid: rev.get(f"/api/proposals/2024/{pid}").json()["merge_group"]  # noqa: E731
    assert _post(rev, "A-001", {"action": "merge", "value": "A-002"}).status_code == 201
    assert _post(rev, "A-002", {"action": "merge", "value": "A-003"}).status_code == 201
    # A-001 was already grouped with A-002: A-003 joins that whole group.
    assert {group(p) for p in ("A-001", "A-002", "A-003")} == {"2024/A-002"}
    # A three-way merge at once keeps all three.
    assert _post(rev, "A-004", {"action": "merge", "value": ["A-005", "A-001"]}).status_code == 201
    assert len({group(p) for p in ("A-001", "A-002", "A-003", "A-004", "A-005")}) == 1


def test_concurrent_merges_lose_no_member(imported):
    _decide_in_threads(
        imported.state,
        [
            ("A-001", {"action": "merge", "value": "A-002"}),
            ("A-003", {"action": "merge", "value": "A-002"}),
            ("A-004", {"action": "merge", "value": "A-003"}),
        ],
    )
    rev = imported.client_for("rev")
    groups = {
        rev.get(f"/api/proposals/2024/{p}").json()["merge_group"]
        for p in ("A-001", "A-002", "A-003", "A-004")
    }
    assert len(groups) == 1 and None not in groups


def test_accept_all_asks_first_and_keeps_imported_co_units(service):
    rev = service.client_for("rev")
    rows = [*TOY_ROWS, ("B-001", TOY_ROWS[1][1], TOY_ROWS[1][2], "", "", "市民政局、市财政局")]
    r = rev.post(
        "/api/imports", files={"file": ("p.csv", proposals_csv(rows))}, headers=api_csrf(rev)
    )
    assert r.status_code == 201, r.text
    service.state.jobs.wait_idle()
    page = rev.get("/proposals/2024/B-001")
    token = csrf_of(page.text)
    r = rev.post("/proposals/2024/B-001/decide", data={"csrf_token": token, "action": "accept"})
    # The imported co-units differ from the suggestion: the page asks before doing anything.
    assert r.status_code == 200 and "确认一键采纳建议" in r.text and "市民政局" in r.text
    assert rev.get("/api/proposals/2024/B-001").json()["decisions"] == []
    r = rev.post(
        "/proposals/2024/B-001/decide",
        data={"csrf_token": token, "action": "accept", "confirm": "1"},
    )
    assert r.status_code == 200 and "已保存" in r.text and "保留原有的协办单位" in r.text
    p = rev.get("/api/proposals/2024/B-001").json()
    assert p["co_units"] == ["市民政局", "市财政局"] and p["category"] and p["main_unit"]
    # Replacing is the reviewer's explicit choice.
    r = rev.post(
        "/proposals/2024/B-001/decide",
        data={"csrf_token": token, "action": "accept", "confirm": "1", "replace": "1"},
    )
    assert "已保存" in r.text
    assert rev.get("/api/proposals/2024/B-001").json()["decided"] == [
        "category",
        "co_units",
        "main_unit",
    ]
    # The API never erases an imported value either, unless asked to.
    r = _post(rev, "A-002", {"action": "set", "field": "co_units", "value": ["市审计局"]})
    r = _post(rev, "A-002", {"action": "accept"})
    assert r.status_code == 201 and r.json()["kept"] == {"co_units": ["市审计局"]}
    assert r.json()["proposal"]["co_units"] == ["市审计局"]


def test_accept_all_on_a_flagged_proposal_asks_for_confirmation(imported):
    from sqlalchemy import select

    from service.models import Proposal, Suggestion

    with imported.state.factory() as s, s.begin():
        p = s.scalar(select(Proposal).where(Proposal.pid == "A-004"))
        sug = s.scalars(select(Suggestion).where(Suggestion.proposal_id == p.id)).first()
        payload = dict(sug.payload)
        payload["abstain"] = {
            **payload.get("abstain", {}),
            "category": {"flag": True, "prediction_set": ["教育", "医疗卫生"], "coverage": 0.95},
        }
        sug.payload = payload
    rev = imported.client_for("rev")
    token = csrf_of(rev.get("/proposals/2024/A-004").text)
    r = rev.post("/proposals/2024/A-004/decide", data={"csrf_token": token, "action": "accept"})
    assert r.status_code == 200 and "需人工判断" in r.text and "确认采纳" in r.text
    assert rev.get("/api/proposals/2024/A-004").json()["decisions"] == []
