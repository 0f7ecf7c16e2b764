"""Record limits that match the database, ids that cannot break a page address, personal
columns kept apart, a required 案由, Chinese messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from table_files import write_csv

from model.records import (
    ID_MAX_CHARS,
    LABEL_MAX_CHARS,
    id_problem,
    is_personal_header,
    read_proposals,
    write_proposals,
)
from model.tables import RecordError

NAME = "李秘密"
PHONE = "13800138000"


def _error(path: Path, **kwargs: bool) -> RecordError:
    with pytest.raises(RecordError) as info:
        read_proposals(path, **kwargs)
    return info.value


def test_limits_match_the_service_columns() -> None:
    from service.models import ImportBatch
    from service.models import Proposal as Row

    assert Row.__table__.c.pid.type.length == ID_MAX_CHARS
    assert Row.__table__.c.category.type.length == LABEL_MAX_CHARS
    assert Row.__table__.c.main_unit.type.length == LABEL_MAX_CHARS
    assert ImportBatch.__table__.c.file_name.type.length >= 200  # uploads.safe_name caps at 200


def test_over_long_ids_and_labels_are_rejected_naming_row_and_column(tmp_path: Path) -> None:
    long_id = "X" * (ID_MAX_CHARS + 1)
    long_unit = "局" * (LABEL_MAX_CHARS + 1)
    path = write_csv(
        tmp_path / "in.csv",
        "提案号,案由,类别,主办单位,协办单位\n"
        f"{long_id},关于甲的建议,民政,市民政局,\n"
        f"2,关于乙的建议,{long_unit},市民政局,\n"
        f"3,关于丙的建议,民政,{long_unit},\n"
        f"4,关于丁的建议,民政,市民政局,市财政局、{long_unit}\n",
    )
    issues = [(i.row, i.column, i.message) for i in _error(path).issues]
    assert [(r, c) for r, c, _ in issues] == [
        (2, "提案号"),
        (3, "类别"),
        (4, "主办单位"),
        (5, "协办单位"),
    ]
    assert f"超过 {ID_MAX_CHARS} 个字符的上限" in issues[0][2]
    assert all(f"超过 {LABEL_MAX_CHARS} 个字符的上限" in m for _, _, m in issues[1:])
    assert long_id not in str(issues) and long_unit not in str(issues)


@pytest.mark.parametrize("pid", ["2024/001", "a?b", "a#b", "..", "a..b", "x%2Fy", "a\\b", "a\tb"])
def test_ids_that_break_an_address_are_rejected(tmp_path: Path, pid: str) -> None:
    assert id_problem(pid)
    path = write_csv(tmp_path / "in.csv", f'提案号,案由\n"{pid}",关于甲的建议\n')
    [issue] = _error(path).issues
    assert issue.row == 2 and issue.column == "提案号" and "不能用于网页地址" in issue.message


@pytest.mark.parametrize("pid", ["2024-001", "A_17", "第3号", "2024.1"])
def test_ordinary_ids_are_accepted(pid: str) -> None:
    assert id_problem(pid) is None


@pytest.mark.parametrize(
    "header",
    ["提案人姓名", "姓名", "联系人", "联系电话", "手机", "身份证号", "住址", "邮箱", "Name"]
    + ["phone", "E-mail", "contact_phone", "proposer name", "留言用户", "user_name"],
)
def test_personal_headers(header: str) -> None:
    assert is_personal_header(header)


@pytest.mark.parametrize(
    "header", ["备注", "附件数", "likes", "重点提案", "status", "届次", "专门委员会"]
)
def test_ordinary_headers(header: str) -> None:
    assert not is_personal_header(header)


def test_personal_columns_are_kept_apart_and_round_trip(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "in.csv",
        f"提案号,案由,提案人姓名,联系电话,备注\nA1,关于甲的建议,{NAME},{PHONE},重点\n",
    )
    [p] = read_proposals(path)
    assert p.extra == {"备注": "重点"}
    assert p.personal == {"提案人姓名": NAME, "联系电话": PHONE}
    assert NAME not in repr(p) and PHONE not in repr(p)
    for suffix in (".csv", ".xlsx", ".jsonl"):
        copy = tmp_path / f"copy{suffix}"
        write_proposals(copy, [p])
        assert read_proposals(copy) == [p]


def test_personal_values_never_appear_in_messages(tmp_path: Path) -> None:
    # A shifted row puts the name and phone where the year and time should be.
    path = write_csv(
        tmp_path / "in.csv",
        f"提案号,案由,年度,提交时间,提案人姓名,电话\nA1,关于甲的建议,{NAME},{PHONE},{NAME},{PHONE}\n",
    )
    text = str(_error(path))
    assert NAME not in text and PHONE not in text
    assert "不是有效的年份" in text and "读作日期" in text


def test_title_required_for_the_service(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "in.csv", "提案号,案由,提案内容\nA1,,只有内容\nA2,关于乙,乙\n")
    assert [p.id for p in read_proposals(path)] == ["A1", "A2"]  # the default stays lenient
    [issue] = _error(path, require_title=True).issues
    assert (issue.row, issue.column, issue.message) == (2, "案由", "案由为空（案由必填）")
    no_title = write_csv(tmp_path / "c.csv", "提案号,提案内容\nA1,只有内容\n")
    [issue] = _error(no_title, require_title=True).issues
    assert "缺少必需的案由列" in issue.message


def test_messages_are_chinese(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "in.csv",
        "提案号,年度,案由,提案内容\n1,2024,甲,甲\n,2024,乙,乙\n1,2024,丙,丙\n2,二〇二四,丁,丁\n3,2024,,\n",
    )
    messages = [i.message for i in _error(path).issues]
    assert messages == [
        "提案号为空",
        "提案号 '1' 重复（第 2 行已有）",
        "该值不是有效的年份（应为 1900 到 2100 之间的整数）",
        "案由和内容都为空",
    ]
