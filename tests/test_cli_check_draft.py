"""`tian check-draft FILE` on a .txt and a .docx draft, with the tiny backbone."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.model.fake_vectors import BigramEncoder
from tian.cli import main

SCHOOL = "市第三中学食堂价格偏高，学生意见较大。建议：一是加强学校食堂监管；二是公开成本。"
RIVER = "白河县城区污水管网老化，雨季污水直排白河。建议：一是排查管网；二是实施雨污分流改造。"


@pytest.fixture()
def encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    import tian.commands.dedup as dedup_cmd

    monkeypatch.setattr(dedup_cmd, "load_cli_encoder", lambda args: BigramEncoder(dim=65))


@pytest.fixture()
def past(tmp_path: Path) -> Path:
    path = tmp_path / "past.csv"
    rows = [
        ("2023-001", 2023, "关于白河污水治理的建议", RIVER, "张三", "市水利局"),
        ("2023-002", 2023, "关于学校食堂的建议", SCHOOL, "李四", "市教育局"),
        (
            "2022-001",
            2022,
            "关于公交线路的建议",
            "增开公交。建议：一是加密班次；二是延长末班。",
            "王五",
            "",
        ),
    ]
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["提案号", "年度", "案由", "提案内容", "提案人", "主办单位"])
        w.writerows(rows)
    return path


@pytest.mark.usefixtures("encoder")
def test_txt_draft_with_past_proposals(
    tmp_path: Path, past: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    draft = tmp_path / "draft.txt"
    draft.write_text("关于学校食堂的建议\n" + SCHOOL, encoding="utf-8")
    args = ["check-draft", str(draft), "--past", str(past)]
    assert main([*args, "--json", "--no-progress"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["title"] == "关于学校食堂的建议"
    assert result["similar"][0]["id"] == "2023-002"
    assert result["similar"][0]["main_unit"] == "市教育局"
    assert "张三" not in json.dumps(result, ensure_ascii=False)  # never the proposer
    assert main([*args, "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "一、格式检查" in text and "二、已有相似提案" in text and "李四" not in text


def test_docx_draft_form_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import docx

    doc = docx.Document()
    doc.add_paragraph("学校食堂")
    doc.add_paragraph("食堂太贵了。")
    doc.save(tmp_path / "d.docx")
    assert main(["check-draft", str(tmp_path / "d.docx"), "--json"]) == 0
    codes = {r["code"] for r in json.loads(capsys.readouterr().out)["form"]}
    assert {"title_shape", "no_suggestions", "no_points", "too_short"} <= codes


def test_bad_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "d.pdf").write_bytes(b"%PDF")
    assert main(["check-draft", str(tmp_path / "d.pdf")]) == 2
    assert "只支持 .txt 和 .docx" in capsys.readouterr().err
    assert main(["check-draft", str(tmp_path / "missing.txt")]) == 2


@pytest.mark.usefixtures("encoder")
def test_topics_and_model(
    tmp_path: Path, toy_proposals: list, capsys: pytest.CaptureFixture[str]
) -> None:
    from model.bundle import save_bundle
    from training.baseline import fit_baseline

    save_bundle(fit_baseline(toy_proposals), tmp_path / "bundle", {"version": "toy"})
    topics = tmp_path / "topics.csv"
    topics.write_text(
        "topic_id,topic\nT1,关于加强学校食堂管理的研究\nT2,关于白河污水治理的研究\n", "utf-8"
    )
    draft = tmp_path / "d.txt"
    draft.write_text("关于学校食堂的建议\n" + SCHOOL, encoding="utf-8")
    argv = ["check-draft", str(draft), "--topics", str(topics), "--model", str(tmp_path / "bundle")]
    assert main([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["topics"][0]["topic_id"] == "T1"
    assert result["suggestion"]["category"][0]["label"]
    assert main(argv) == 0
    assert "题目：关于加强学校食堂管理的研究" in capsys.readouterr().out
