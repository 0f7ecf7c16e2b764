"""Draft check (提案预审): form remarks on a draft and its most similar past proposals.

What the office checks in 初审 before a proposal becomes a case, put in front of its writer:

- the 案由 has the usual shape 关于……的建议 (or 提案);
- the text makes concrete requests: a 建议 section and numbered points (一是…, （一）…, 1. …);
- its length sits in the office's usual range (10th–90th percentile of stored proposals);
- it raises one matter (一事一案): numbered points that belong to different policy fields
  (education, transport, healthcare…) or a 案由 that joins two fields suggest more than one.

Every remark carries the sentences that triggered it, so the writer sees where to look.
The similar-proposal ranking reuses the duplicate scorer (`model.dedup`): a cosine
shortlist over the past proposals' cached vectors, then the calibrated "same matter"
probability of the draft against each shortlisted proposal. Nothing here stores anything.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_LENGTH_RANGE",
    "FIELDS",
    "Remark",
    "form_remarks",
    "length_range",
    "matters",
    "rank_similar",
    "read_draft",
    "sentences",
    "split_title",
]

# Used when there are too few stored proposals to know the office's own range.
DEFAULT_LENGTH_RANGE = (400, 2000)
MIN_FOR_RANGE = 20

TITLE_SHAPE = re.compile(r"^关于.{2,}的(?:建议|提案)$")
# Markers of a concrete-request section.
SUGGESTION_SECTION = re.compile(
    r"(?:^|[。；;！!\n])\s*(?:为此|对此|因此|特)?(?:提出)?(?:如下|以下|几点|具体|对策)?建议(?:如下|：|:|，|,|一是)"
)
# Numbered points: 一是 / 二是, （一）, 一、, 1. / 1、 / (1), 第一，.
POINT = re.compile(
    r"(?:[一二三四五六七八九十]是|[（(][一二三四五六七八九十\d]{1,2}[）)]|"
    r"(?<![\d.])[一二三四五六七八九十]、|(?<![\d.])\d{1,2}[.、．](?!\d)|第[一二三四五六七八九十][，,、])"
)
SENTENCE_END = re.compile(r"(?<=[。！？!?；;])|\n+")

# Policy fields and words that place a sentence in one. A draft whose numbered requests fall
# in two or more fields (each with at least two words of it) likely raises several matters.
FIELDS: dict[str, tuple[str, ...]] = {
    "教育": ("学校", "教育", "学生", "教师", "课程", "幼儿园", "校园", "课后", "招生", "学位"),
    "医疗卫生": ("医院", "医疗", "医保", "诊疗", "患者", "医生", "卫生院", "药品", "就医", "护理"),
    "交通": ("公交", "道路", "交通", "停车", "地铁", "线路", "站点", "车辆", "通行", "路口"),
    "生态环境": ("污染", "生态", "河道", "排放", "垃圾", "环保", "水质", "治理", "绿化", "扬尘"),
    "产业经济": (
        "企业",
        "产业",
        "园区",
        "制造",
        "招商",
        "技改",
        "融资",
        "营商",
        "市场主体",
        "产值",
    ),
    "农业农村": (
        "农村",
        "农业",
        "农民",
        "村庄",
        "种植",
        "乡村",
        "耕地",
        "合作社",
        "养殖",
        "农产品",
    ),
    "养老社保": (
        "养老",
        "老年人",
        "社保",
        "残疾人",
        "救助",
        "低保",
        "助餐",
        "失能",
        "托育",
        "就业",
    ),
    "文化旅游": (
        "文化",
        "旅游",
        "景区",
        "文物",
        "非遗",
        "图书馆",
        "演出",
        "游客",
        "博物馆",
        "体育",
    ),
    "城市建设": (
        "小区",
        "物业",
        "住房",
        "老旧",
        "加装电梯",
        "管网",
        "拆迁",
        "城管",
        "燃气",
        "供暖",
    ),
    "安全治理": (
        "安全",
        "消防",
        "应急",
        "执法",
        "电动车",
        "隐患",
        "防汛",
        "食品安全",
        "诈骗",
        "网格",
    ),
}
MIN_FIELD_HITS = 2
MANY_MATTERS_TITLE = re.compile(r"若干|几点|多项|方面|几个问题")
_VERBS = (
    "加强|优化|推进|完善|发展|提升|改善|促进|规范|解决|加快|支持|保护|整治|缓解|建设|深化|"
    "提高|扩大|落实|保障|强化|打造|做好|实施|开展"
)
TITLE_JOIN = re.compile(rf"(?:和|及|与|、|以及|并)(?=(?:{_VERBS}))")


@dataclass(frozen=True)
class Remark:
    """One form remark.

    Attributes:
        code: machine code (``title_shape``, ``no_suggestions``, ``no_points``,
            ``too_short``, ``too_long``, ``several_matters``).
        message: what the writer should know, in Chinese.
        sentences: the sentences of the draft that triggered it (may be empty).
    """

    code: str
    message: str
    sentences: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


def sentences(text: str) -> list[str]:
    """The draft's sentences (split after 。！？； and at line breaks), stripped, non-empty."""
    return [s.strip() for s in SENTENCE_END.split(text or "") if s and s.strip()]


def split_title(text: str) -> tuple[str, str]:
    """(案由, 提案内容) of a pasted or uploaded draft: its first non-empty line is the 案由."""
    lines = (text or "").strip().splitlines()
    if not lines:
        return "", ""
    return lines[0].strip(), "\n".join(lines[1:]).strip()


def length_range(lengths: Sequence[int]) -> tuple[int, int]:
    """The office's usual content length: 10th to 90th percentile of stored proposals.

    Falls back to `DEFAULT_LENGTH_RANGE` with fewer than 20 proposals to measure.
    """
    values = [n for n in lengths if n > 0]
    if len(values) < MIN_FOR_RANGE:
        return DEFAULT_LENGTH_RANGE
    lo, hi = np.percentile(values, [10, 90])
    return int(lo), int(hi)


def _field_hits(text: str) -> dict[str, int]:
    hits = {name: sum(text.count(w) for w in words) for name, words in FIELDS.items()}
    return {k: v for k, v in hits.items() if v}


def _points(content: str) -> list[str]:
    """The numbered requests of the draft (the text from one number to the next)."""
    text = content or ""
    section = SUGGESTION_SECTION.search(text)
    body = text[section.start() :] if section else text
    starts = [m.start() for m in POINT.finditer(body)]
    if len(starts) < 2:
        return []
    bounds = [*starts, len(body)]
    return [
        body[a:b].strip() for a, b in zip(bounds, bounds[1:], strict=False) if body[a:b].strip()
    ]


def _strong(text: str) -> set[str]:
    return {f for f, n in _field_hits(text).items() if n >= MIN_FIELD_HITS}


def _title_clauses(title: str) -> list[str]:
    """The 案由 split where a joiner (和、及、与) is followed by a verb: "加强A和优化B"."""
    core = re.sub(r"^关于|的(?:建议|提案)$", "", title)
    return [c for c in TITLE_JOIN.split(core) if c]


def matters(title: str, content: str) -> tuple[list[str], list[str]]:
    """Policy fields of the separate matters the draft seems to raise, with their passages.

    Two or more fields mean more than one matter (一事一案). The signals, in order:

    - a 案由 that says so (若干, 几点, 多项, 方面, 几个问题);
    - a 案由 of two verb clauses ("加强A和优化B") whose fields are both known and disjoint;
    - two numbered requests (or, without numbering, sentences after the 建议 marker) each
      strongly in a field (two or more of its words) that the other does not touch at all.
      Requests of one matter spill into neighbouring fields (a hospital's parking is
      healthcare and transport), but then they share a field's words; requests about
      separate matters do not.
    """
    if MANY_MATTERS_TITLE.search(title):
        return [*_field_hits(title)] or ["多个方面"], [title]
    clauses = _title_clauses(title)
    if len(clauses) >= 2:
        sets = [set(_field_hits(c)) for c in clauses]
        if all(sets) and all(a.isdisjoint(b) for i, a in enumerate(sets) for b in sets[i + 1 :]):
            return sorted(set().union(*sets)), [title]
    points = _points(content)
    if not points:
        section = SUGGESTION_SECTION.search(content or "")
        points = sentences(content[section.start() :]) if section else []
    for i, p in enumerate(points):
        sp = _strong(p)
        for q in points[i + 1 :]:
            sq = _strong(q)
            if not sp or not sq or not sp.isdisjoint(sq):
                continue
            if sp & set(_field_hits(q)) or sq & set(_field_hits(p)):
                continue
            return sorted(sp | sq), [p, q]
    return [], []


def _short(sentence: str, limit: int = 120) -> str:
    return sentence if len(sentence) <= limit else sentence[: limit - 1] + "…"


def form_remarks(
    title: str, content: str, usual_length: tuple[int, int] = DEFAULT_LENGTH_RANGE
) -> list[Remark]:
    """Form remarks on a draft, each with the sentences that triggered it; empty when fine."""
    out: list[Remark] = []
    title = (title or "").strip()
    content = (content or "").strip()
    if not TITLE_SHAPE.match(title):
        out.append(
            Remark(
                "title_shape",
                "案由不符合常见格式“关于……的建议”（或“……的提案”），建议改写案由。",
                [title] if title else [],
            )
        )
    if not SUGGESTION_SECTION.search(content):
        out.append(
            Remark(
                "no_suggestions",
                "正文中没有找到“建议”部分（如“为此建议：”），请写明具体的意见建议。",
                [_short(s) for s in sentences(content)[-2:]],
            )
        )
    if len(list(POINT.finditer(content))) < 2:
        out.append(
            Remark(
                "no_points",
                "建议未分条列出（如“一是……二是……”或“（一）……”），分条写出更便于承办单位逐条答复。",
                [],
            )
        )
    lo, hi = usual_length
    n = len(content)
    if n < lo:
        out.append(
            Remark(
                "too_short",
                f"正文 {n} 字，短于本办常见篇幅（{lo}–{hi} 字），情况和建议可能写得不够充分。",
                [],
            )
        )
    elif n > hi:
        out.append(
            Remark(
                "too_long",
                f"正文 {n} 字，长于本办常见篇幅（{lo}–{hi} 字），可考虑精简。",
                [],
            )
        )
    fields, passages = matters(title, content)
    if fields:
        named = "、".join(fields) if len(fields) >= 2 else "多个方面"
        out.append(
            Remark(
                "several_matters",
                f"可能不符合“一事一案”：建议涉及{named}，可考虑拆分为几件提案，每件只提一个问题。",
                [_short(p) for p in passages] or [title],
            )
        )
    return out


def rank_similar(
    title: str,
    content: str,
    vector: np.ndarray,
    past_titles: Sequence[str],
    past_contents: Sequence[str],
    past_vectors: np.ndarray,
    *,
    k: int = 5,
    shortlist: int = 12,
) -> list[tuple[int, float, float]]:
    """The past proposals most likely about the same matter as the draft, best first.

    A cosine shortlist of `shortlist` past proposals, then the shipped duplicate scorer
    (`model.dedup.DuplicateScorer`, the one behind `tian dedup` and the 并案 page) on the
    draft against each of them. The corpus statistics of the scorer come from the draft and
    its shortlist, so a check costs the same with 500 or 5,000 past proposals.

    Args:
        title, content: the draft.
        vector: the draft's passage vector (L2-normalised, like `past_vectors`' rows).
        past_titles, past_contents, past_vectors: the past proposals.
        k: how many to return.
        shortlist: how many nearest by cosine are scored.

    Returns:
        (index into the past proposals, calibrated same-matter score, cosine), best first.
    """
    from model.dedup import DuplicateScorer, build_pool, score_pool

    past_vectors = np.asarray(past_vectors, dtype=np.float32)
    if len(past_vectors) == 0 or k < 1:
        return []
    cos = past_vectors @ np.asarray(vector, dtype=np.float32)
    m = min(shortlist, len(cos))
    near = np.argpartition(-cos, m - 1)[:m] if m < len(cos) else np.arange(len(cos))
    near = near[np.argsort(-cos[near], kind="stable")]
    ids = ["draft", *(f"p{i}" for i in near)]
    pool = build_pool(
        ids,
        [title, *(past_titles[i] for i in near)],
        [content, *(past_contents[i] for i in near)],
        np.vstack([np.asarray(vector, dtype=np.float32)[None, :], past_vectors[near]]),
        n_data=1,
    )
    scored = score_pool(pool, [(0, j) for j in range(1, len(ids))], DuplicateScorer())
    ranked = sorted(
        ((int(i), s.score, float(cos[i])) for i, s in zip(near, scored, strict=True)),
        key=lambda t: (-t[1], -t[2]),
    )
    return ranked[:k]


def read_draft(data: bytes, name: str) -> tuple[str, str]:
    """(案由, 提案内容) of an uploaded draft: .txt (UTF-8 or GB18030) or .docx.

    The first non-empty line (paragraph) is the 案由. Raises ValueError, in Chinese, for
    another kind of file or one that cannot be read.
    """
    lower = name.lower()
    if lower.endswith(".docx"):
        import io
        import zipfile

        import docx

        try:
            document = docx.Document(io.BytesIO(data))
        except (zipfile.BadZipFile, KeyError, ValueError) as exc:
            raise ValueError(f"{name}：不是可读的 Word 文档（.docx）") from exc
        text = "\n".join(p.text for p in document.paragraphs)
    elif lower.endswith(".txt"):
        for encoding in ("utf-8-sig", "gb18030"):
            try:
                text = data.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
        else:
            raise ValueError(f"{name}：文本文件编码无法识别（请用 UTF-8 或 GB18030）")
    else:
        raise ValueError(f"{name}：只支持 .txt 和 .docx 文件")
    lines = [line for line in text.splitlines() if line.strip()]
    return split_title("\n".join(lines))
