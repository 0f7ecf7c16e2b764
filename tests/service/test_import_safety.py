"""Imports under hostile and careless files: bounded parsing, clean rejections in Chinese,
ids that cannot break a page address, personal columns that never reach a viewer or a log."""

from __future__ import annotations

import logging
import time
import zipfile
from pathlib import Path

import pytest
from service_helpers import CSV_HEADER, TOY_ROWS, api_csrf, csrf_of, proposals_csv
from sqlalchemy import func, select

NAME = "赵秘密"
PHONE = "13912345678"


def _count(service, model) -> int:
    with service.state.factory() as s:
        return s.scalar(select(func.count()).select_from(model))


def bomb_xlsx(path: Path, megabytes: int) -> Path:
    """A workbook whose sheet declares ``megabytes`` of empty rows (a few hundred KB on disk)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/workbook.xml", "<workbook/>")
        with zf.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as fh:
            fh.write(b"<worksheet><sheetData>")
            chunk = b"<row/>" * 65536
            for _ in range(megabytes * 1024 * 1024 // len(chunk)):
                fh.write(chunk)
            fh.write(b"</sheetData></worksheet>")
    return path


def test_a_zip_bomb_is_refused_at_once_and_the_server_keeps_serving(service, tmp_path):
    from service.models import JobRecord, Proposal

    path = bomb_xlsx(tmp_path / "bomb.xlsx", 1024)
    assert path.stat().st_size < 3 * 1024 * 1024
    rev = service.client_for("rev")
    started = time.perf_counter()
    r = rev.post(
        "/api/imports", files={"file": ("bomb.xlsx", path.read_bytes())}, headers=api_csrf(rev)
    )
    assert time.perf_counter() - started < 10
    assert r.status_code == 422, r.text
    [error] = r.json()["errors"]
    assert "超过 200 MB 的上限" in error["message"]
    assert rev.get("/healthz").status_code == 200
    assert _count(service, Proposal) == 0
    # The job is recorded with its outcome, and the upload is gone.
    with service.state.factory() as s:
        job = s.get(JobRecord, r.json()["job"])
        assert job.status == "failed" and "未导入" in job.message
    assert not list((service.tmp / "var" / "uploads").iterdir())


def test_parsing_runs_in_a_bounded_child_process(tmp_path):
    from service.importer import ImportRejected, parse_upload

    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8") as fh:
        fh.write("提案号,年度,案由,提案内容\n")
        for i in range(20_000):
            fh.write(f"A{i},2024,关于第{i}件事的建议,{'正文内容' * 50}\n")
    with pytest.raises(ImportRejected) as info:
        parse_upload(path, "big.csv", memory_mb=60)
    assert "内存上限" in info.value.issues[0].message
    with pytest.raises(ImportRejected) as info:
        parse_upload(path, "big.csv", timeout_s=0.05)
    assert "已停止读取" in info.value.issues[0].message
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".json"]  # no output left over


def test_bad_ids_and_over_long_values_are_rejected_with_row_and_column(service):
    rev = service.client_for("rev")
    rows = [("2024/001", "关于甲的建议", "甲"), ("X" * 101, "关于乙的建议", "乙")]
    r = rev.post(
        "/api/imports", files={"file": ("ids.csv", proposals_csv(rows))}, headers=api_csrf(rev)
    )
    assert r.status_code == 422
    errors = {e["row"]: e for e in r.json()["errors"]}
    assert errors[2]["column"] == "提案号" and "不能用于网页地址" in errors[2]["message"]
    assert errors[3]["column"] == "提案号" and "超过 100 个字符的上限" in errors[3]["message"]
    assert "X" * 101 not in r.text


def test_database_errors_become_a_clean_rejection_without_values(service, monkeypatch, caplog):
    from sqlalchemy.exc import DataError

    import service.importer as importer

    def broken(session, keys):
        raise DataError("INSERT INTO proposals ...", {"proposer": NAME}, Exception(f"bad {NAME}"))

    monkeypatch.setattr(importer, "_existing", broken)
    rev = service.client_for("rev")
    caplog.set_level(logging.INFO)
    r = rev.post(
        "/api/imports", files={"file": ("p.csv", proposals_csv(TOY_ROWS))}, headers=api_csrf(rev)
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["code"] == "database"
    assert "数据库拒绝保存" in r.json()["errors"][0]["message"]
    assert NAME not in r.text and NAME not in caplog.text
    job = rev.get(f"/api/jobs/{r.json()['job']}").json()
    assert NAME not in str(job) and job["status"] == "failed"


def test_engines_hide_statement_parameters(tmp_path):
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from service.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(DBAPIError) as info, engine.connect() as conn:
        conn.execute(text("INSERT INTO missing (name) VALUES (:name)"), {"name": NAME})
    assert NAME not in str(info.value)
    engine.dispose()


def test_rejections_are_logged_without_traceback(service, caplog):
    rev = service.client_for("rev")
    caplog.set_level(logging.INFO)
    bad = [("C-2", "", "")]
    rev.post("/api/imports", files={"file": ("d.csv", proposals_csv(bad))}, headers=api_csrf(rev))
    refused = [r for r in caplog.records if "refused" in r.getMessage()]
    assert refused and all(r.levelno == logging.INFO and r.exc_info is None for r in refused)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_personal_columns_never_reach_a_viewer_or_the_log(service, caplog):
    from service.models import Proposal

    caplog.set_level(logging.DEBUG)
    data = (
        "提案号,年度,案由,提案内容,提案人姓名,联系电话,备注\n"
        f"P-1,2024,关于加强养老服务的建议,养老,{NAME},{PHONE},重点\n"
    ).encode()
    rev = service.client_for("rev")
    r = rev.post("/api/imports", files={"file": ("p.csv", data)}, headers=api_csrf(rev))
    assert r.status_code == 201, r.text
    view = service.client_for("view")
    item = view.get("/api/proposals/2024/P-1")
    assert item.status_code == 200 and item.json()["extra"] == {"备注": "重点"}
    page = view.get("/proposals/2024/P-1")
    listing = view.get("/api/proposals?year=2024")
    for text in (item.text, page.text, listing.text, r.text, caplog.text):
        assert NAME not in text and PHONE not in text
    with service.state.factory() as s:
        row = s.scalar(select(Proposal).where(Proposal.pid == "P-1"))
        assert row.personal == {"提案人姓名": NAME, "联系电话": PHONE}


def test_title_required_and_messages_chinese(service):
    rev = service.client_for("rev")
    data = (
        CSV_HEADER + "T-1,2024,,只有内容,某委员,,,\nT-2,二〇二四,关于乙,乙,某委员,,,\n"
    ).encode()
    r = rev.post("/api/imports", files={"file": ("t.csv", data)}, headers=api_csrf(rev))
    assert r.status_code == 422
    messages = [(e["row"], e["column"], e["message"]) for e in r.json()["errors"]]
    assert (2, "案由", "案由为空（案由必填）") in messages
    assert (3, "年度", "该值不是有效的年份（应为 1900 到 2100 之间的整数）") in messages
    assert r.json()["detail"].startswith("文件“t.csv”未导入")


def test_unknown_labels_are_warned_about_with_the_nearest_name(service):
    rev = service.client_for("rev")
    rows = [("W-1", "关于河湖治理的建议", "河湖", "生态环保", "市生态环境局", "市水利厅")]
    r = rev.post(
        "/api/imports", files={"file": ("w.csv", proposals_csv(rows))}, headers=api_csrf(rev)
    )
    assert r.status_code == 201, r.text
    warnings = {w["value"]: w for w in r.json()["warnings"]}
    assert set(warnings) == {"生态环保", "市水利厅"}  # the main unit is a known name
    assert warnings["生态环保"]["nearest"] == "生态环境"
    assert warnings["市水利厅"]["nearest"] == "市水利局"
    assert "是否应为“生态环境”" in warnings["生态环保"]["message"]
    job_page = rev.get(f"/jobs/{r.json()['job']}")
    assert "是否应为“市水利局”" in job_page.text


def test_a_rejected_import_page_says_not_imported_with_the_reason(service):
    rev = service.client_for("rev")
    token = csrf_of(rev.get("/import").text)
    r = rev.post(
        "/import",
        data={"csrf_token": token},
        files={"file": ("d.csv", proposals_csv([("C-2", "", "")]))},
    )
    assert r.status_code == 200
    assert "未导入" in r.text and "案由和内容都为空" in r.text
    assert 'id="job-bar" hidden' in r.text  # no empty "0 / 0 行" bar
