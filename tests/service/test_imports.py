"""Import: all or nothing, idempotent, size limit, background job with progress."""

from __future__ import annotations

from service_helpers import TOY_ROWS, api_csrf, csrf_of, proposals_csv
from sqlalchemy import func, select


def _count(service, model) -> int:
    with service.state.factory() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_bad_row_rejects_whole_file(service):
    from service.models import ImportBatch, Proposal

    rev = service.client_for("rev")
    rows = [*TOY_ROWS[:3], ("A-001", "重复编号", "内容")]  # a duplicate id on row 5
    r = rev.post(
        "/api/imports", files={"file": ("bad.csv", proposals_csv(rows))}, headers=api_csrf(rev)
    )
    assert r.status_code == 422
    body = r.json()
    assert body["file_name"] == "bad.csv" and "没有保存任何内容" in body["detail"]
    assert any(e["row"] == 5 and "提案号 'A-001' 重复" in e["message"] for e in body["errors"])
    assert _count(service, Proposal) == 0 and _count(service, ImportBatch) == 0


def test_errors_never_quote_the_proposer(service):
    rev = service.client_for("rev")
    data = "提案号,年度,案由,提案人\nX1,二〇二四,关于,张三丰\n".encode()
    r = rev.post("/api/imports", files={"file": ("y.csv", data)}, headers=api_csrf(rev))
    assert r.status_code == 422 and "张三丰" not in r.text


def test_reimport_changes_nothing(imported):
    from service.models import Decision, ImportBatch, Proposal, Suggestion

    rev = imported.client_for("rev")
    before = [_count(imported, m) for m in (Proposal, ImportBatch, Suggestion, Decision)]
    r = rev.post(
        "/api/imports", files={"file": ("p.csv", proposals_csv(TOY_ROWS))}, headers=api_csrf(rev)
    )
    assert r.status_code == 200
    assert r.json()["added"] == 0 and r.json()["unchanged"] == len(TOY_ROWS)
    imported.state.jobs.wait_idle()
    assert [_count(imported, m) for m in (Proposal, ImportBatch, Suggestion, Decision)] == before


def test_changed_row_is_an_error_unless_update(imported):
    rev = imported.client_for("rev")
    rows = [
        (TOY_ROWS[0][0], TOY_ROWS[0][1], "内容已经修改"),
        ("A-100", "关于新增的建议", "新的内容"),
    ]
    f = {"file": ("p2.csv", proposals_csv(rows))}
    r = rev.post("/api/imports", files=f, headers=api_csrf(rev))
    assert r.status_code == 422
    assert r.json()["errors"][0]["id"] == "A-001"
    assert rev.get("/api/proposals/2024/A-100").status_code == 404  # nothing stored
    r = rev.post("/api/imports", files=f, data={"update": "true"}, headers=api_csrf(rev))
    assert r.status_code == 201 and r.json()["updated"] == 1 and r.json()["added"] == 1
    assert rev.get("/api/proposals/2024/A-001").json()["content"] == "内容已经修改"


def test_missing_year_uses_form_year_or_is_an_error(service):
    rev = service.client_for("rev")
    data = "提案号,案由,提案内容\nB1,关于教育的建议,学校教师\n".encode()
    r = rev.post("/api/imports", files={"file": ("n.csv", data)}, headers=api_csrf(rev))
    assert r.status_code == 422 and r.json()["errors"][0]["column"] == "年度"
    r = rev.post(
        "/api/imports",
        files={"file": ("n.csv", data)},
        data={"year": "2023"},
        headers=api_csrf(rev),
    )
    assert r.status_code == 201 and r.json()["years"] == [2023]


def test_upload_limits(service):
    rev = service.client_for("rev")
    r = rev.post("/api/imports", files={"file": ("p.docx", b"x")}, headers=api_csrf(rev))
    assert r.status_code == 415 and "不支持的文件类型" in r.json()["detail"]
    service.state.settings.max_upload_mb = 1
    big = proposals_csv(TOY_ROWS) + b"x" * (1024 * 1024 + 10)
    r = rev.post("/api/imports", files={"file": ("big.csv", big)}, headers=api_csrf(rev))
    assert r.status_code == 413 and "1 MB" in r.json()["detail"]


def test_xlsx_import(service, tmp_path):
    from model.records import Proposal, write_proposals

    path = tmp_path / "p.xlsx"
    write_proposals(
        path, [Proposal(id=r[0], year=2024, title=r[1], content=r[2]) for r in TOY_ROWS]
    )
    rev = service.client_for("rev")
    r = rev.post(
        "/api/imports", files={"file": ("p.xlsx", path.read_bytes())}, headers=api_csrf(rev)
    )
    assert r.status_code == 201 and r.json()["added"] == len(TOY_ROWS)


def test_import_job_and_page(service):
    rev = service.client_for("rev")
    r = rev.post(
        "/api/imports",
        files={"file": ("p.csv", proposals_csv(TOY_ROWS))},
        data={"wait": "false"},
        headers=api_csrf(rev),
    )
    assert r.status_code == 202
    job = rev.get(r.json()["status_url"]).json()
    assert job["status"] == "done" and job["done"] == job["total"] == len(TOY_ROWS)
    # The page: upload, then a progress page that the script polls.
    token = csrf_of(rev.get("/import").text)
    rows = [("C-1", "关于医院的建议", "医疗卫生")]
    r = rev.post(
        "/import", data={"csrf_token": token}, files={"file": ("c.csv", proposals_csv(rows))}
    )
    assert r.status_code == 200 and "导入进度" in r.text
    assert rev.get("/api/imports").json()[0]["file_name"] == "c.csv"
    bad = [("C-2", "", "")]
    r = rev.post(
        "/import", data={"csrf_token": token}, files={"file": ("d.csv", proposals_csv(bad))}
    )
    job_id = int(r.url.path.rsplit("/", 1)[1])
    job = rev.get(f"/api/jobs/{job_id}").json()
    assert job["status"] == "failed" and job["result"]["errors"]


def test_analysis_fills_suggestions_duplicates(imported):
    rev = imported.client_for("rev")
    item = rev.get("/api/proposals/2024/A-002").json()
    assert item["suggestion"]["category"][0]["label"] == "生态环境"
    assert item["why"]["category"]  # words that drove the suggestion
    dups = rev.get("/api/proposals/2024/A-002/duplicates").json()["duplicates"]
    exact = [d for d in dups if d["id"] == "A-005"]
    assert exact and exact[0]["kind"] == "exact" and exact[0]["evidence"]["passages"]
    assert rev.get("/api/duplicates?year=2024").json()["pairs"]
