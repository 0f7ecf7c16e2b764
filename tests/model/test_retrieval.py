"""NeighbourVote: the labels of the nearest past proposals as a vote, near repeats, persistence."""

from __future__ import annotations

import time

import numpy as np
import pytest

from model.retrieval import NeighbourVote

_THEMES = {
    # category, main unit, co-units, phrases
    "edu": ("教育科技", "市教育局", [], "学校 学生 教师 课程 课后服务 校车 教育"),
    "health": ("医疗卫生", "市卫生健康委员会", ["市医疗保障局"], "医院 医生 看病 疾病 药品 医疗"),
    "water": ("生态环境", "市生态环境局", ["市水利局"], "河湖 污染 水质 排污 生态 黑臭水体"),
}


def _corpus(rows_per_theme: int = 6, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    texts, themes = [], []
    for theme, (_, _, _, words) in _THEMES.items():
        vocab = words.split()
        for i in range(rows_per_theme):
            picked = rng.choice(vocab, size=4, replace=False)
            texts.append(f"关于{picked[0]}的建议{i}：" + "，".join(picked) + "问题亟待解决")
            themes.append(theme)
    return texts, themes


def _labels(themes: list[str]) -> tuple[dict, dict]:
    labels = {
        "category": [_THEMES[t][0] for t in themes],
        "main_unit": [_THEMES[t][1] for t in themes],
        "co_units": [list(_THEMES[t][2]) for t in themes],
    }
    order = {
        "category": sorted({_THEMES[t][0] for t in _THEMES}),
        "main_unit": sorted({_THEMES[t][1] for t in _THEMES}) + ["市无往年提案局"],
        "co_units": ["市水利局", "市医疗保障局", "市财政局"],
    }
    return labels, order


@pytest.fixture
def fitted() -> tuple[NeighbourVote, list[str], list[str]]:
    texts, themes = _corpus()
    labels, order = _labels(themes)
    ids = [f"P{i:03d}" for i in range(len(texts))]
    return NeighbourVote(k=5).fit(texts, labels, order, ids=ids), texts, themes


def test_vote_follows_the_neighbours_and_is_a_distribution(fitted) -> None:
    vote, _, _ = fitted
    probs = vote.predict_proba(["关于医院看病难和药品价格的建议", "关于河湖黑臭水体污染治理"])
    cat = probs["category"]
    assert cat.shape == (2, 3)
    np.testing.assert_allclose(cat.sum(axis=1), 1.0)
    assert (cat > 0).all()  # smoothed: no label is ever impossible
    order = vote.label_order["category"]
    assert order[cat[0].argmax()] == "医疗卫生"
    assert order[cat[1].argmax()] == "生态环境"
    unit = probs["main_unit"]
    # A unit with no past proposals gets only the prior's small share, never zero.
    assert 0 < unit[0, vote.label_order["main_unit"].index("市无往年提案局")] < 0.1
    co = probs["co_units"][1]
    labels = vote.label_order["co_units"]
    assert co[labels.index("市水利局")] > 0.5 > co[labels.index("市财政局")]


def test_far_neighbours_give_a_flatter_vote_than_a_repeat(fitted) -> None:
    vote, texts, _ = fitted
    repeat, unrelated = vote.predict_proba([texts[0], "今天天气很好，我们去公园散步吧"])["category"]
    assert repeat.max() > 0.9
    assert unrelated.max() < repeat.max()


def test_unknown_labels_do_not_vote() -> None:
    texts, themes = _corpus()
    labels, order = _labels(themes)
    # Hide the category of every health row: health texts must then not vote 医疗卫生.
    labels["category"] = [
        None if t == "health" else c for t, c in zip(themes, labels["category"], strict=True)
    ]
    labels["co_units"] = [
        None if t == "health" else c for t, c in zip(themes, labels["co_units"], strict=True)
    ]
    vote = NeighbourVote(k=3).fit(texts, labels, order)
    probs = vote.predict_proba(["关于医院医生看病的建议"])
    cat = probs["category"][0]
    assert cat[order["category"].index("医疗卫生")] < 0.2
    # Main unit is still known for those rows.
    assert order["main_unit"][probs["main_unit"][0].argmax()] == "市卫生健康委员会"


def test_leave_one_out_excludes_the_row_itself(fitted) -> None:
    vote, texts, _ = fitted
    repeats = vote.near_repeats(texts)
    assert len(repeats) == len(texts) > 0
    assert all(r is not None and r[0] == i for i, r in enumerate(repeats))
    loo = vote.near_repeats(texts, exclude=list(range(len(texts))))
    assert len(loo) == len(texts)
    assert all(r is None or r[0] != i for i, r in enumerate(loo))
    with_self = vote.predict_proba(texts[:1])["category"][0]
    without = vote.predict_proba(texts[:1], exclude=[0])["category"][0]
    assert without.max() < with_self.max()


def test_near_repeats_find_verbatim_copies_only(fitted) -> None:
    vote, texts, _ = fitted
    edited = texts[4] + "。"  # a repost with one extra mark
    found = vote.near_repeats([edited, "关于完全不同的话题：城市夜间经济与夜市管理"])
    assert found[0] is not None and found[0][0] == 4 and found[0][1] > 0.9
    assert found[1] is None


def test_neighbours_report_ids_similarity_and_labels(fitted) -> None:
    vote, texts, _ = fitted
    near = vote.neighbours(texts[7], k=3)
    assert len(near) == 3
    assert near[0]["id"] == "P007" and near[0]["similarity"] == pytest.approx(1.0, abs=1e-3)
    assert near[0]["similarity"] >= near[1]["similarity"] >= near[2]["similarity"]
    assert near[0]["labels"] == {
        "category": "医疗卫生",
        "main_unit": "市卫生健康委员会",
        "co_units": ["市医疗保障局"],
    }


def test_vectors_mix_into_the_similarity() -> None:
    texts = ["关于学校课后服务的建议", "关于医院看病难的建议", "关于河湖污染治理的建议"]
    labels = {"category": ["教育", "卫生", "环境"]}
    order = {"category": ["教育", "卫生", "环境"]}
    vectors = np.eye(3, dtype=np.float32)
    vote = NeighbourVote(k=1, vector_weight=0.9).fit(texts, labels, order, vectors=vectors)
    # The query text reads like the school row, but its vector is the hospital row's.
    query = ["关于学校课后服务的建议书"]
    lexical = vote.predict_proba(query)["category"][0]
    mixed = vote.predict_proba(query, vectors=np.array([[0.0, 1.0, 0.0]]))["category"][0]
    assert order["category"][lexical.argmax()] == "教育"
    assert order["category"][mixed.argmax()] == "卫生"
    assert vote.neighbours(query[0], k=1, vectors=np.array([0.0, 1.0, 0.0]))[0]["id"] == "1"


def test_out_of_fold_fit_one_fold_predict_another() -> None:
    texts, themes = _corpus(rows_per_theme=8)
    labels, order = _labels(themes)
    fold = np.arange(len(texts)) % 2
    oof = np.zeros((len(texts), len(order["category"])))
    for f in (0, 1):
        fit_rows = np.flatnonzero(fold != f)
        held = np.flatnonzero(fold == f)
        part = {h: [labels[h][i] for i in fit_rows] for h in labels}
        vote = NeighbourVote(k=3).fit([texts[i] for i in fit_rows], part, order)
        oof[held] = vote.predict_proba([texts[i] for i in held])["category"]
    truth = [order["category"].index(_THEMES[t][0]) for t in themes]
    assert (oof.argmax(axis=1) == truth).mean() > 0.8


def test_save_and_load_round_trip(fitted, tmp_path) -> None:
    vote, texts, _ = fitted
    vote.save(tmp_path / "nv")
    again = NeighbourVote.load(tmp_path / "nv")
    for head, probs in vote.predict_proba(texts[:4]).items():
        np.testing.assert_allclose(again.predict_proba(texts[:4])[head], probs)
    assert again.neighbours(texts[2], k=2) == vote.neighbours(texts[2], k=2)
    assert again.k == vote.k and again.alpha == vote.alpha


def test_bad_input_gets_clear_errors(tmp_path) -> None:
    with pytest.raises(ValueError, match="no texts"):
        NeighbourVote().fit([], {}, {})
    with pytest.raises(ValueError, match="labels\\['category'\\] has 1 entries for 2 texts"):
        NeighbourVote().fit(["a", "b"], {"category": ["x"]}, {"category": ["x"]})
    with pytest.raises(RuntimeError, match="not fitted"):
        NeighbourVote().predict_proba(["a"])
    with pytest.raises(FileNotFoundError, match="no neighbour index"):
        NeighbourVote.load(tmp_path)


def test_fast_enough_for_a_city_history() -> None:
    """8,000 fitted texts and 1,200 queries in a few seconds."""
    rng = np.random.default_rng(1)
    chars = list(
        "关于加强推进建设完善提升改善优化促进保障的建议问题措施市县区镇村街道社区学校医院河湖"
    )
    texts = ["".join(rng.choice(chars, size=200)) for _ in range(9_200)]
    labels = {"category": [str(i % 7) for i in range(8_000)]}
    started = time.perf_counter()
    vote = NeighbourVote().fit(texts[:8_000], labels, {"category": [str(i) for i in range(7)]})
    vote.predict_proba(texts[8_000:])
    assert time.perf_counter() - started < 30  # ~3 s of CPU; generous for a shared CI box


def test_loo_proba_matches_excluding_each_row(fitted) -> None:
    vote, texts, _ = fitted
    loo = vote.loo_proba()
    direct = vote.predict_proba(texts, exclude=list(range(len(texts))))
    for head in direct:
        np.testing.assert_allclose(loo[head], direct[head], rtol=1e-5)
    # Without its own row, each text is still voted right by its theme's other rows.
    order = vote.label_order["category"]
    cats = [order[j] for j in loo["category"].argmax(axis=1)]
    assert cats == [_THEMES[t][0] for t in fitted[2]]
