"""Reference-topic matching: reading topic files, ranking, the no-topic case, coverage."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from fake_vectors import fake_vectors

from model.topics import (
    TOPIC_FEATURES,
    Topic,
    TopicWeights,
    coverage,
    coverage_table,
    match_topics,
    pair_features,
    read_topics,
    standout_margin,
    title_of,
    topic_features,
    weights_from_json,
)

TOPICS = [
    Topic("T1", "推进老旧小区加装电梯"),
    Topic("T2", "加强河湖污水治理"),
    Topic("T3", "促进乡村旅游发展"),
]
PROPOSALS = {
    "p1": "关于老旧小区加装电梯的建议：老旧小区老人上下楼困难，建议加快加装电梯，简化审批。",
    "p2": "关于白河污水治理的建议：白河污水直排，建议推进河湖污水治理和雨污分流。",
    "p3": "关于规范网约车管理的建议：网约车司机资质参差不齐，建议交通部门加强监管。",
}


# The shipped weights are fitted for e5 cosines (a narrow band near 0.85-0.95); the fake
# vectors spread over 0-1, so the mechanism is tested with weights suited to them.
FAKE_WEIGHTS = TopicWeights(
    coef=(0.0, 20.0, 10.0, 5.0, 0.0, 0.0, 0.0), intercept=-2.0, threshold=0.5
)


def _match(**kw):
    kw.setdefault("weights", FAKE_WEIGHTS)
    ids, texts = list(PROPOSALS), list(PROPOSALS.values())
    return match_topics(
        ids, texts, fake_vectors(texts), TOPICS, fake_vectors([t.topic for t in TOPICS]), **kw
    )


def test_read_topics_txt_numbers_lines(tmp_path: Path) -> None:
    f = tmp_path / "t.txt"
    f.write_text("推进老旧小区加装电梯\n\n加强河湖污水治理\n", encoding="utf-8")
    assert read_topics(f) == [
        Topic("T001", "推进老旧小区加装电梯"),
        Topic("T002", "加强河湖污水治理"),
    ]


def test_read_topics_csv(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_text("topic_id,topic\nA1,推进老旧小区加装电梯\nA2,加强河湖污水治理\n", encoding="utf-8")
    assert [t.topic_id for t in read_topics(f)] == ["A1", "A2"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("id,name\n1,x\n", "no 'topic' column"),
        ("topic_id,topic\nA1,x\nA1,y\n", "duplicate topic_id 'A1'"),
        ("topic_id,topic\nA1,\n", "row 2: empty"),
    ],
)
def test_read_topics_bad_csv(tmp_path: Path, content: str, message: str) -> None:
    f = tmp_path / "t.csv"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        read_topics(f)


def test_read_topics_unknown_suffix_and_empty(tmp_path: Path) -> None:
    (tmp_path / "t.doc").write_text("x")
    with pytest.raises(ValueError, match="must be .csv"):
        read_topics(tmp_path / "t.doc")
    (tmp_path / "e.txt").write_text("\n\n")
    with pytest.raises(ValueError, match="no topics"):
        read_topics(tmp_path / "e.txt")


def test_ranking_puts_the_matching_topic_first() -> None:
    matches = _match(top_k=2)
    assert matches[0].topics[0][0] == "T1"
    assert matches[1].topics[0][0] == "T2"
    assert all(len(m.topics) == 2 for m in matches)
    scores = [s for _, s in matches[0].topics]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for m in matches for _, s in m.topics)


def test_no_topic_when_nothing_fits() -> None:
    matches = _match(top_k=3)
    by_id = {m.id: m for m in matches}
    assert not by_id["p1"].no_topic
    assert by_id["p3"].no_topic  # no topic is about ride-hailing


def test_threshold_controls_no_topic() -> None:
    strict = TopicWeights(coef=(0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0), intercept=-10.0, threshold=0.5)
    matches = _match(weights=strict)
    assert len(matches) == len(PROPOSALS) and all(m.no_topic for m in matches)


def test_topic_features_shape_and_gap() -> None:
    cos = np.array([[0.9, 0.8], [0.85, 0.95]])
    feats = topic_features(cos, np.zeros_like(cos))
    assert feats.shape == (2, 2, len(TOPIC_FEATURES)) == (2, 2, 7)
    assert feats[0, 0, 2] == 0.0 and feats[1, 0, 2] == pytest.approx(-0.1)


def test_rank_features_look_from_both_sides() -> None:
    # Proposal 0's best topic is T0, but for T0 proposal 1 is closer: the topic's side says
    # proposal 0 is only T0's second-best match.
    cos = np.array([[0.90, 0.80, 0.70], [0.95, 0.60, 0.50]])
    feats = topic_features(cos, np.zeros_like(cos))
    in_proposal = feats[..., TOPIC_FEATURES.index("rank_in_proposal")]
    in_topic = feats[..., TOPIC_FEATURES.index("rank_in_topic")]
    assert in_proposal[0].tolist() == [1.0, 0.5, pytest.approx(1 / 3)]
    assert in_topic[:, 0].tolist() == [0.5, 1.0]
    assert in_topic[:, 1].tolist() == [1.0, 0.5]


def test_context_ranks_a_lone_draft_among_the_year() -> None:
    # Alone, a draft is every topic's best match; against the year's proposals it is not.
    cos = np.array([[0.80, 0.90]])
    alone = topic_features(cos, np.zeros_like(cos))
    ctx = np.array([[0.95, 0.50], [0.85, 0.60]])
    ranked = topic_features(cos, np.zeros_like(cos), context_cosines=ctx)
    k = TOPIC_FEATURES.index("rank_in_topic")
    assert alone[0, :, k].tolist() == [1.0, 1.0]
    assert ranked[0, :, k].tolist() == [pytest.approx(1 / 3), 1.0]


def test_title_lexical_uses_the_first_line() -> None:
    assert title_of("\n关于加装电梯的建议\n正文") == "关于加装电梯的建议"
    texts = ["关于老旧小区加装电梯的建议\n污水治理污水治理污水治理", "关于污水治理的建议\n电梯"]
    vecs = np.eye(2, 4, dtype=np.float32)
    feats = pair_features(texts, vecs, ["老旧小区加装电梯"], np.ones((1, 4), np.float32) / 2)
    title = feats[:, 0, TOPIC_FEATURES.index("title_lexical")]
    assert title[0] > 0.3 > title[1]


def test_standout_margin_is_zero_for_a_tie_and_large_for_a_clear_best() -> None:
    # Proposal 0 is close to T0 only; proposal 1 is equally close to T1 and T2, and T1 and T2
    # are alike for every proposal: nothing stands out for it.
    cos = np.array([[0.95, 0.70, 0.70], [0.60, 0.90, 0.90], [0.70, 0.75, 0.75]])
    margin = standout_margin(cos)
    assert margin[1] == pytest.approx(0.0)
    assert margin[0] > 1.0
    assert standout_margin(cos[:, :1]).tolist() == [np.inf] * 3  # one topic: nothing to compare


def test_standout_margin_counts_the_topics_side() -> None:
    # For the draft alone, T0 and T1 are equally far above its mean. Among the year's
    # proposals, everyone is close to T0 and nobody to T1: for T1 the draft stands out.
    draft = np.array([[0.80, 0.80, 0.50]])
    year = np.array([[0.90, 0.40, 0.60], [0.85, 0.45, 0.55]])
    assert standout_margin(draft)[0] == pytest.approx(0.0)
    assert standout_margin(draft, context_cosines=year)[0] > 1.0


def _margin_weights(margin: float) -> TopicWeights:
    # Threshold 0.01: every proposal reaches it, so the cut-off rule would flag none.
    return TopicWeights(FAKE_WEIGHTS.coef, FAKE_WEIGHTS.intercept, 0.01, no_topic_margin=margin)


def test_margin_rule_decides_no_topic() -> None:
    # "between" is as close to T1 as to T2, from both sides (T1 and T2 mirror each other).
    ids, texts = ["on_t1", "on_t2", "between"], ["电梯", "污水", "电梯污水"]
    pvecs = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.7, 0.7, 0.0]], np.float32)
    tvecs = np.eye(3, dtype=np.float32)
    matches = match_topics(ids, texts, pvecs, TOPICS, tvecs, weights=_margin_weights(0.5))
    assert [m.no_topic for m in matches] == [False, False, True]
    # Without a margin, the cut-off decides, and every proposal reaches 0.01.
    plain = replace(_margin_weights(0.5), no_topic_margin=None)
    assert not any(
        m.no_topic for m in match_topics(ids, texts, pvecs, TOPICS, tvecs, weights=plain)
    )


def test_coverage_lists_flagged_proposals_and_counts_topics_by_cut_off() -> None:
    from model.topics import TopicMatch

    matches = [
        TopicMatch("a", [("T1", 0.9)], no_topic=False),
        TopicMatch("b", [("T2", 0.6)], no_topic=True),  # flagged, though T2 reaches the cut
        TopicMatch("c", [("T3", 0.1)], no_topic=False),
    ]
    report = coverage(matches, TOPICS, threshold=0.5, confirmed={"c": []})
    assert report["proposals_without_topic"] == ["b", "c"]
    assert report["topics_without_proposals"] == ["T3"]


def test_shipped_no_topic_rule_is_the_fitted_margin() -> None:
    from model.topics import DEFAULT_WEIGHTS, DEFAULT_WEIGHTS_PATH

    data = json.loads(DEFAULT_WEIGHTS_PATH.read_text(encoding="utf-8"))
    fitted = data["info"]["no_topic"]["at_fitted"]["cutoff"]
    assert DEFAULT_WEIGHTS.no_topic_margin == data["no_topic_margin"] == fitted > 0


def test_coverage_report_counts_and_lists() -> None:
    matches = _match(top_k=3)
    report = coverage(matches, TOPICS, threshold=0.5)
    counts = {r["topic_id"]: r["count"] for r in report["topics"]}
    assert counts["T1"] >= 1 and counts["T2"] >= 1
    assert "T3" in report["topics_without_proposals"]
    assert "p3" in report["proposals_without_topic"]
    json.dumps(report, ensure_ascii=False)
    table = coverage_table(report)
    assert "T1" in table and "proposals with no topic: 1" in table


def test_to_dict_shape() -> None:
    d = _match(top_k=1)[0].to_dict()
    assert set(d) == {"id", "topics", "no_topic"}
    assert set(d["topics"][0]) == {"topic_id", "score"}


def test_weights_from_json(tmp_path: Path) -> None:
    f = tmp_path / "w.json"
    coef = [1, 2, 3, 4, 5, 6, 7]
    f.write_text(json.dumps({"coef": coef, "intercept": -1, "threshold": 0.4}))
    w = weights_from_json(f)
    assert w.coef == tuple(float(c) for c in coef) and w.threshold == 0.4
    assert w.no_topic_margin is None
    f.write_text(json.dumps({"coef": coef, "intercept": -1, "no_topic_margin": 0.3}))
    assert weights_from_json(f).no_topic_margin == 0.3
    f.write_text(json.dumps({"coef": coef, "intercept": -1, "no_topic_margin": 0}))
    with pytest.raises(ValueError, match="no_topic_margin must be positive"):
        weights_from_json(f)
    f.write_text(json.dumps({"coef": [1, 2, 3, 4], "intercept": 0}))  # the old four features
    with pytest.raises(ValueError, match="expected 7"):
        weights_from_json(f)


def test_mismatched_lengths_are_errors() -> None:
    with pytest.raises(ValueError, match="same length"):
        match_topics(["a"], [], np.zeros((1, 4)), TOPICS, np.zeros((3, 4)))
    with pytest.raises(ValueError, match="top_k"):
        _match(top_k=0)


@pytest.mark.smoke
def test_shipped_weights_with_real_e5() -> None:
    from model.encoder import load_encoder

    encoder = load_encoder(None)
    ids, texts = list(PROPOSALS), list(PROPOSALS.values())
    matches = match_topics(
        ids,
        texts,
        encoder.encode(texts),
        TOPICS,
        encoder.encode([t.topic for t in TOPICS], kind="query"),
    )
    assert matches[0].topics[0][0] == "T1" and not matches[0].no_topic
    assert matches[1].topics[0][0] == "T2"
