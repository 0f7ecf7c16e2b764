"""Exports: 交办 list XLSX with formula neutralisation, training data with confirmed labels only."""

from __future__ import annotations

import io

from service_helpers import api_csrf, proposals_csv


def test_assignment_export_neutralises_formulas(service):
    import openpyxl

    rev = service.client_for("rev")
    rows = [("F-1", '=HYPERLINK("http://x")', "内容一"), ("F-2", "关于教育的建议", "学校教师")]
    # The reader refuses real formulas; a title such as "=1+1 问题" is ordinary text there.
    rows[0] = ("F-1", "=1+1 问题", "内容一")
    r = rev.post(
        "/api/imports", files={"file": ("f.csv", proposals_csv(rows))}, headers=api_csrf(rev)
    )
    assert r.status_code == 201, r.text
    h = api_csrf(rev)
    r_bad = rev.post(
        "/api/proposals/2024/F-2/decisions",
        json={"action": "set", "field": "category", "value": "@教育"},
        headers=h,
    )
    r = rev.get("/api/exports/2024/assignments.xlsx")
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    ws = openpyxl.load_workbook(io.BytesIO(r.content)).active
    values = [[c.value for c in row] for row in ws.iter_rows()]
    assert values[0][:6] == ["提案号", "案由", "类别", "主办单位", "协办单位", "并案组"]
    # The text is kept as typed (no visible apostrophe) and the cell has the quotePrefix style.
    assert values[1][1] == "=1+1 问题" and ws["B2"].quotePrefix
    assert not ws["B3"].quotePrefix
    # A category that starts a formula is refused at the decision (422, Chinese message).
    assert r_bad.status_code == 422 and "公式" in r_bad.json()["detail"]
    assert all(c.data_type != "f" for row in ws.iter_rows() for c in row)


def test_training_csv_export_neutralises_formulas(service):
    """The training CSV (linked on the queue page) follows the same rule as the XLSX."""
    import csv

    rev = service.client_for("rev")
    titles = ["=1+1 问题", "+1+1 问题", "-1+1 问题", "＝1+1 问题"]
    rows = [(f"T-{i}", t, "内容") for i, t in enumerate(titles)]
    r = rev.post(
        "/api/imports", files={"file": ("t.csv", proposals_csv(rows))}, headers=api_csrf(rev)
    )
    assert r.status_code == 201, r.text
    for pid, _, _ in rows:
        rev.post(
            f"/api/proposals/2024/{pid}/decisions",
            json={"action": "set", "field": "category", "value": "教育"},
            headers=api_csrf(rev),
        )
    r = rev.get("/api/exports/2024/training.csv")
    table = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert len(table) == len(titles)
    assert all(row["title"].startswith("'") for row in table)


def test_training_export_has_confirmed_labels_only(imported):
    from model.records import read_proposals

    rev = imported.client_for("rev")
    h = api_csrf(rev)
    rev.post("/api/proposals/2024/A-001/decisions", json={"action": "accept"}, headers=h)
    rev.post(
        "/api/proposals/2024/A-003/decisions",
        json={"action": "set", "field": "category", "value": "医疗卫生"},
        headers=h,
    )
    r = rev.get("/api/exports/2024/training.jsonl")
    assert r.status_code == 200 and "某委员" not in r.text  # no proposer
    path = imported.tmp / "t.jsonl"
    path.write_bytes(r.content)
    records = {p.id: p for p in read_proposals(path)}
    assert set(records) == {"A-001", "A-003"}
    assert records["A-001"].main_unit == "市工业和信息化局"
    assert records["A-003"].category == "医疗卫生" and records["A-003"].main_unit is None
    r = rev.get("/api/exports/2024/training.csv")
    assert r.status_code == 200 and r.content.startswith(b"\xef\xbb\xbf")
    assert rev.get("/api/exports/2024/training.xml").status_code == 422
