"""Issue 12 (2, 4, 5, 6): one model registry view, 并案 page, topic decisions, queue state."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from service_helpers import api_csrf, csrf_of


def add_proposals(state: Any, rows: list[tuple[str, str, str]], year: int = 2024) -> dict[str, int]:
    """Store proposals directly (id, title, content); returns pid -> row id."""
    from sqlalchemy import select

    from service.models import ImportBatch, Proposal, User

    with state.factory() as s, s.begin():
        admin = s.scalar(select(User).where(User.username == "admin"))
        batch = ImportBatch(
            file_name="t.csv",
            sha256="0" * 64,
            rows=len(rows),
            added=len(rows),
            updated=0,
            unchanged=0,
            user_id=admin.id,
        )
        s.add(batch)
        s.flush()
        made = [
            Proposal(year=year, pid=pid, title=t, content=c, batch_id=batch.id)
            for pid, t, c in rows
        ]
        s.add_all(made)
        s.flush()
        return {p.pid: p.id for p in made}


def add_suggestion(state: Any, row_id: int, payload: dict[str, Any]) -> None:
    from sqlalchemy import select

    from service.models import ModelVersion, Suggestion

    with state.factory() as s, s.begin():
        mv = s.scalar(select(ModelVersion).where(ModelVersion.version == "fixed"))
        if mv is None:
            mv = ModelVersion(version="fixed", kind="baseline", manifest={})
            s.add(mv)
            s.flush()
        s.add(
            Suggestion(proposal_id=row_id, model_version_id=mv.id, payload=payload, explanation={})
        )


ROWS = [
    (
        "B-001",
        "关于加强河湖生态环境保护的建议",
        "生态环境河湖污染水土保持流域治理工作，白河沿岸排污口整治。",
    ),
    (
        "B-002",
        "关于加强河湖生态环境保护的建议",
        "生态环境河湖污染水土保持流域治理工作，白河沿岸排污口整治。",
    ),
    ("B-003", "关于完善学校教育课程的建议", "教育学校学生教师课程建设完善"),
]


# ------------------------------------------------------------------ model registry


def test_cli_promotion_is_served_and_the_page_names_the_rollback_target(
    service: Any, baseline_bundle_2: Path, capsys: Any
) -> None:
    from tian.cli import main

    root = str(service.state.settings.registry_root)
    adm = service.client_for("admin")
    assert adm.get("/api/models").json()["live"] == "toy-1"
    assert main(["models", "--root", root, "add", str(baseline_bundle_2)]) == 0
    assert capsys.readouterr().out.startswith("added toy-2 (baseline):")
    assert main(["models", "--root", root, "promote", "toy-2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("promoted toy-2 (baseline, live)") and len(out.splitlines()) == 2

    # The running service follows the registry without a restart.
    rev = service.client_for("rev")
    r = rev.post("/api/suggest", json={"text": "河湖生态环境"}, headers=api_csrf(rev))
    assert r.json()["model_version"] == "toy-2"
    page = adm.get("/models").text
    assert '<strong id="live-model">toy-2</strong>' in page
    assert "回滚到 toy-1" in page  # the registry's rollback target, not a guess

    # Promoting the live version again is a Chinese message, not an English error.
    r = adm.post("/models/toy-2/promote", data={"csrf_token": csrf_of(page)})
    assert r.status_code == 409 and "模型 toy-2 已在使用中" in r.text
    assert "already" not in r.text
    r = adm.post("/api/models/toy-2/promote", headers=api_csrf(adm))
    assert r.status_code == 409 and r.json()["detail"]["code"] == "already_live"

    r = adm.post("/models/rollback", data={"csrf_token": csrf_of(page)})
    assert r.status_code == 200 and "已回滚，现在使用模型 toy-1" in r.text
    assert main(["models", "--root", root, "list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [b["version"] for b in listing if b["live"]] == ["toy-1"]


def test_models_page_kinds_and_metrics_in_chinese(
    service: Any, baseline_bundle_2: Path, tmp_path: Path
) -> None:
    from model.registry import ModelRegistry

    copy = tmp_path / "toy-3"
    shutil.copytree(baseline_bundle_2, copy)
    manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    manifest["version"] = "toy-3"
    manifest["metrics"] = {
        "category": {"macro_f1": 0.912, "accuracy": 0.93},
        "main_unit": {"macro_f1": 0.61, "accuracy": 0.7},
    }
    (copy / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    ModelRegistry(service.state.settings.registry_root).add(copy)
    page = service.client_for("admin").get("/models").text
    row3 = page[page.index('data-version="toy-3"') :].split("</tr>")[0]
    row1 = page[page.index('data-version="toy-1"') :].split("</tr>")[0]
    assert "类别 宏F1 0.912" in row3 and "主办单位 准确率 0.700" in row3
    assert '<td class="small metrics">未记录</td>' in row1  # metrics: null in the bundle
    assert '<td class="kind">基线 TF-IDF</td>' in row1
    assert ">baseline<" not in page


# ------------------------------------------------------------------ queue state


def test_queue_joint_confidence_and_tags_follow_the_review(service: Any) -> None:
    ids = add_proposals(service.state, ROWS[2:])
    add_suggestion(
        service.state,
        ids["B-003"],
        {
            "category": [{"label": "教育科技", "score": 0.99}],
            "main_unit": [{"label": "市教育局", "score": 0.5}, {"label": "市人社局", "score": 0.4}],
            "co_units": [],
            "abstain": {"category": {"flag": False}, "main_unit": {"flag": True}},
        },
    )
    rev = service.client_for("rev")
    page = rev.get("/queue?year=2024").text
    assert '<span class="num">50%</span>' in page  # 0.99 × 0.5, not the category's 99%
    assert "需人工判断" in page.split("<tbody>")[1]
    assert "<strong>1</strong>需关注" in page
    assert "联合置信度 <strong>50%</strong>" in rev.get("/proposals/2024/B-003").text
    h = api_csrf(rev)
    for field, value in (("category", "教育科技"), ("main_unit", "市教育局")):
        r = rev.post(
            "/api/proposals/2024/B-003/decisions",
            json={"action": "set", "field": field, "value": value},
            headers=h,
        )
        assert r.status_code == 201, r.text
    page = rev.get("/queue?year=2024").text
    assert "需人工判断" not in page.split("<tbody>")[1]
    assert "<strong>0</strong>需关注" in page


# ------------------------------------------------------------------ duplicates, 并案


def _plant_group(state: Any, ids: dict[str, int]) -> None:
    from service.models import DuplicateGroup, DuplicatePair

    with state.factory() as s, s.begin():
        s.add(
            DuplicatePair(
                year=2024,
                proposal_a=ids["B-001"],
                proposal_b=ids["B-002"],
                score=0.97,
                kind="exact",
            )
        )
        s.add(
            DuplicateGroup(
                year=2024,
                label="G-B-001",
                representative_id=ids["B-001"],
                members=[ids["B-001"], ids["B-002"]],
            )
        )


def test_duplicates_card_links_to_a_duplicates_filter(service: Any) -> None:
    ids = add_proposals(service.state, ROWS)
    _plant_group(service.state, ids)
    rev = service.client_for("rev")
    page = rev.get("/queue?year=2024").text
    assert 'id="card-duplicates" href="/queue?year=2024&dup=1"><strong>2</strong>' in page
    assert 'id="card-groups" href="/groups?year=2024"><strong>1</strong>' in page
    only = rev.get("/queue?year=2024&dup=1").text.split("<tbody>")[1]
    assert "B-001" in only and "B-002" in only and "B-003" not in only
    api = rev.get("/api/proposals?year=2024&likely_duplicate=true").json()
    assert [i["id"] for i in api["items"]] == ["B-001", "B-002"]


def test_groups_page_lists_evidence_and_merges_and_splits(service: Any) -> None:
    ids = add_proposals(service.state, ROWS)
    _plant_group(service.state, ids)
    rev = service.client_for("rev")
    page = rev.get("/groups?year=2024").text
    assert 'id="G-B-001"' in page and "代表" in page and "97%" in page
    assert "<mark>" in page  # the shared passage
    assert "共 1 组：1 组含本年度多件提案，可并案" in page
    r = rev.post(
        "/groups/2024/merge",
        data={"csrf_token": csrf_of(page), "members": ["B-001", "B-002"]},
    )
    assert r.status_code == 200 and "已保存：2 件提案已并入同一并案组" in r.text
    assert "已并案" in r.text
    listing = rev.get("/api/proposals?year=2024").json()["items"]
    groups = {i["id"]: i["merge_group"] for i in listing}
    assert groups["B-001"] and groups["B-001"] == groups["B-002"] and not groups["B-003"]
    r = rev.post("/groups/2024/split", data={"csrf_token": csrf_of(r.text), "remove": "B-002"})
    assert r.status_code == 200 and "已保存：提案已移出并案组" in r.text
    listing = rev.get("/api/proposals?year=2024").json()["items"]
    assert not {i["id"]: i["merge_group"] for i in listing}["B-002"]
    api = rev.get("/api/duplicates/groups?year=2024").json()["groups"]
    assert api[0]["label"] == "G-B-001" and api[0]["members"][1]["score"] == 0.97
    # Viewers see the page but no merge buttons.
    assert "并案所选提案" not in service.client_for("view").get("/groups?year=2024").text


# ------------------------------------------------------------------ topics


def test_reviewer_topics_replace_matches_on_coverage_and_export(service: Any) -> None:
    from model.topics import DEFAULT_WEIGHTS
    from model.topics import Topic as ModelTopic
    from service.bootstrap import store_topics
    from service.models import Topic, TopicMatch

    ids = add_proposals(service.state, ROWS)
    with service.state.factory() as s, s.begin():
        store_topics(s, 2024, [ModelTopic("T01", "河湖治理"), ModelTopic("T02", "教育课程")])
    with service.state.factory() as s, s.begin():
        rows = {t.topic_id: t.id for t in s.query(Topic)}
        high = DEFAULT_WEIGHTS.threshold + 0.05
        for pid in ("B-001", "B-002", "B-003"):
            s.add(TopicMatch(proposal_id=ids[pid], topic_row_id=rows["T01"], score=high, rank=1))
    rev = service.client_for("rev")
    report = rev.get("/api/topics/coverage?year=2024").json()
    assert report["threshold"] == DEFAULT_WEIGHTS.threshold < 0.5  # the fitted cut-off
    assert report["topics_without_proposals"] == ["T02"]

    page = rev.get("/proposals/2024/B-003").text
    assert 'action="/proposals/2024/B-003/topics"' in page
    r = rev.post(
        "/proposals/2024/B-003/topics", data={"csrf_token": csrf_of(page), "topics": ["T02"]}
    )
    assert (
        r.status_code == 200 and "已保存：参考题目已更新" in r.text and "已由审核人确认" in r.text
    )
    r = rev.post("/proposals/2024/B-002/topics", data={"csrf_token": csrf_of(page), "none": "1"})
    assert "已保存：本提案无对应参考题目" in r.text
    report = rev.get("/api/topics/coverage?year=2024").json()
    counts = {t["topic_id"]: t["proposals"] for t in report["topics"]}
    assert counts == {"T01": ["B-001"], "T02": ["B-003"]}
    assert report["proposals_without_topic"] == ["B-002"]
    assert report["confirmed_proposals"] == ["B-002", "B-003"]
    coverage_page = rev.get("/topics?year=2024").text
    assert '<strong id="proposals-confirmed">2</strong>' in coverage_page

    csv_text = rev.get("/api/topics/2024/assignments.csv").content.decode("utf-8-sig")
    lines = csv_text.splitlines()
    assert lines[0] == "提案号,案由,参考题目编号,参考题目,来源"
    assert "B-003,关于完善学校教育课程的建议,T02,教育课程,审核确认" in lines
    assert any(line.startswith("B-001,") and line.endswith(",模型匹配") for line in lines)

    r = rev.post("/api/topics/2024/B-001", json={"topics": ["T99"]}, headers=api_csrf(rev))
    assert r.status_code == 422 and "没有参考题目 T99" in r.json()["detail"]["message"]
    r = service.client_for("view").post(
        "/api/topics/2024/B-001",
        json={"topics": ["T01"]},
        headers=api_csrf(service.client_for("view")),
    )
    assert r.status_code == 403


def test_coverage_follows_the_matchers_stored_no_topic_verdict(service: Any) -> None:
    # "No topic" is the matcher's proposal-level verdict (its standout margin), stored with the
    # matches: a proposal whose best score clears the cut-off can still answer no topic, and
    # one below it can answer one. Rows without a verdict keep the cut-off rule.
    from model.topics import DEFAULT_WEIGHTS
    from model.topics import Topic as ModelTopic
    from service.bootstrap import store_topics
    from service.models import Topic, TopicMatch

    ids = add_proposals(service.state, ROWS)
    with service.state.factory() as s, s.begin():
        store_topics(s, 2024, [ModelTopic("T01", "河湖治理")])
    high, low = DEFAULT_WEIGHTS.threshold + 0.05, DEFAULT_WEIGHTS.threshold - 0.05
    with service.state.factory() as s, s.begin():
        row = s.query(Topic).one().id
        for pid, score, verdict in (
            ("B-001", high, True),
            ("B-002", low, False),
            ("B-003", low, None),
        ):
            s.add(
                TopicMatch(
                    proposal_id=ids[pid], topic_row_id=row, score=score, rank=1, no_topic=verdict
                )
            )
    report = service.client_for("rev").get("/api/topics/coverage?year=2024").json()
    assert report["proposals_without_topic"] == ["B-001", "B-003"]


def test_an_empty_similar_list_says_why(service: Any) -> None:
    # No earlier year imported is not "analysis pending".
    add_proposals(service.state, ROWS)
    rev = service.client_for("rev")
    page = rev.get("/proposals/2024/B-001").text
    assert "尚未导入往年提案" in page and "尚未完成文本分析" not in page
    add_proposals(service.state, [("P-001", "关于河湖治理的建议", "河湖治理")], year=2023)
    page = rev.get("/proposals/2024/B-001").text
    assert "往年提案尚未完成文本分析" in page
