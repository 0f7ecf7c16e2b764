"""Form checks of the draft check (提案预审) and its similar-proposal ranking."""

from __future__ import annotations

import io

import numpy as np
import pytest

from model.draft_check import (
    DEFAULT_LENGTH_RANGE,
    form_remarks,
    length_range,
    matters,
    rank_similar,
    read_draft,
    sentences,
    split_title,
)

GOOD = (
    "关于加快老旧小区加装电梯的建议",
    "老旧小区多层住宅没有电梯，老年人上下楼困难，审批环节多。为此建议：一是简化加装电梯审批流程；"
    "二是制定低层住户补偿指导标准；三是允许提取住房公积金用于加装电梯。",
)


def codes(title: str, content: str, span: tuple[int, int] = (10, 1000)) -> set[str]:
    return {r.code for r in form_remarks(title, content, span)}


def test_a_well_formed_single_matter_draft_has_no_remarks() -> None:
    assert codes(*GOOD) == set()


def test_title_shape() -> None:
    assert "title_shape" in codes("老旧小区加装电梯", GOOD[1])
    assert "title_shape" not in codes("关于加快老旧小区加装电梯的提案", GOOD[1])
    remark = next(r for r in form_remarks("电梯问题", GOOD[1]) if r.code == "title_shape")
    assert remark.sentences == ["电梯问题"]


def test_missing_suggestions_and_points() -> None:
    found = codes("关于老旧小区电梯的建议", "老旧小区没有电梯。老年人上下楼困难。")
    assert {"no_suggestions", "no_points"} <= found
    numbered = "情况如下。建议：（一）简化审批；（二）给予补助。"
    assert not {"no_suggestions", "no_points"} & codes("关于老旧小区电梯的建议", numbered)


def test_length_against_the_usual_range() -> None:
    assert "too_short" in codes(*GOOD, span=(500, 900))
    assert "too_long" in codes(*GOOD, span=(10, 50))
    assert length_range([100] * 5) == DEFAULT_LENGTH_RANGE  # too few to measure
    lo, hi = length_range(list(range(100, 1100, 10)))
    assert 180 <= lo <= 200 and 990 <= hi <= 1000


def test_several_matters_names_the_fields_and_the_sentences() -> None:
    title = "关于加强校园安全和优化公交线路的建议"
    fields, passages = matters(title, "建议：一是设置接送区；二是增开公交线路。")
    assert set(fields) >= {"交通"} and passages == [title]
    content = (
        "群众反映较多。建议：一是提高乡镇卫生院医生待遇，改善基层医疗条件；"
        "二是加快保障性租赁住房建设，盘活存量住房，改造老旧小区。"
    )
    remark = next(
        r for r in form_remarks("关于民生工作的建议", content) if r.code == "several_matters"
    )
    assert "医疗卫生" in remark.message and "城市建设" in remark.message
    assert any("卫生院" in s for s in remark.sentences) and any(
        "住房" in s for s in remark.sentences
    )
    assert "several_matters" in codes("关于改善民生若干问题的建议", GOOD[1])


def test_one_matter_spilling_into_a_neighbouring_field_is_not_flagged() -> None:
    # A hospital's parking is healthcare and transport, yet one matter.
    content = (
        "市妇幼保健院周边道路拥堵。建议：一是在医院周边建设停车楼，缓解医院停车和道路拥堵；"
        "二是推行预约就诊与预约停车联动，方便患者就医停车。"
    )
    assert matters("关于缓解市妇幼保健院周边停车难的建议", content) == ([], [])


def test_sentences_and_title_split() -> None:
    assert sentences("一。二！\n三；") == ["一。", "二！", "三；"]
    assert split_title("\n 关于X的建议 \n正文一\n正文二") == ("关于X的建议", "正文一\n正文二")


def test_read_draft_txt_docx_and_bad_files() -> None:
    import docx

    assert read_draft("关于X的建议\n正文".encode("gb18030"), "a.txt") == ("关于X的建议", "正文")
    doc = docx.Document()
    for text in ("关于Y的建议", "", "正文一", "正文二"):
        doc.add_paragraph(text)
    buf = io.BytesIO()
    doc.save(buf)
    assert read_draft(buf.getvalue(), "d.DOCX") == ("关于Y的建议", "正文一\n正文二")
    with pytest.raises(ValueError, match="Word"):
        read_draft(b"not a zip", "d.docx")
    with pytest.raises(ValueError, match=".txt 和 .docx"):
        read_draft(b"x", "d.pdf")


def test_rank_similar_prefers_the_same_matter_to_a_closer_vector() -> None:
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(4, 8)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    draft = vecs[3] * 0.0 + vecs[0]
    titles = ["关于加装电梯的建议", "关于公交线路的建议", "关于学校课程的建议", "关于学校的建议"]
    contents = [GOOD[1], "增开公交线路，加密班次。", "丰富课程。", "学校建设。"]
    ranked = rank_similar(GOOD[0], GOOD[1], draft, titles, contents, vecs, k=2)
    assert [i for i, _, _ in ranked][0] == 0 and len(ranked) == 2
    assert ranked[0][1] > 0.9  # a verbatim repeat is flagged by the duplicate scorer
    # With a shortlist of one, only the nearest by cosine is scored.
    only = rank_similar(GOOD[0], GOOD[1], vecs[2], titles, contents, vecs, k=3, shortlist=1)
    assert [i for i, _, _ in only] == [2]
    assert rank_similar("a", "b", draft, [], [], np.zeros((0, 8))) == []
