"""Duplicate scorer: features, kinds, calibration file, candidate generation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from fake_vectors import e5_like_vectors as fake_vectors

from model.dedup import (
    FEATURE_NAMES,
    DedupCalibration,
    DuplicateScorer,
    build_pool,
    candidate_pairs,
    char_candidates,
    clean_for_overlap,
    pair_features,
    rarity_weights,
    score_pool,
    signature,
)

BASE = (
    "东城区幸福小区建于上世纪九十年代，共有住宅楼十二栋，多为六层无电梯。居民中六十岁以上老人占四成，"
    "上下楼十分困难。建议区住建局牵头，简化审批流程，对加装电梯给予每台二十万元补贴，并协调低层住户意见。"
)
NEAR = "各位委员：" + BASE.replace("十分困难", "非常困难") + "此事群众反映强烈。"
OTHER = (
    "白河县城区污水管网老化，雨季污水直排白河，下游水质下降明显。建议县水利局和生态环境局联合排查管网，"
    "分期实施雨污分流改造，并建立河长巡查制度，确保白河水质达标。"
)
OTHER_PLACE = BASE.replace("东城区幸福小区", "西山区和平小区")


# Other proposals of the same year: the corpus statistics (rarity, TF-IDF) come from the whole
# pool, as they do for a real year's file, so a pool of two or three texts would be unreal.
FILLER = [
    "建议在青山县建设农产品冷链物流中心，解决果农采摘后储存难、损耗大的问题，由县农业农村局牵头。",
    "江川高新区企业招工难，建议人社局联合职业院校开设订单班，定向培养数控和焊接技术工人。",
    "城西片区中小学学位紧张，建议教育局加快新建两所小学，并优化学区划分，缓解大班额问题。",
    "解放路早晚高峰拥堵严重，建议交警部门优化信号灯配时，增设公交专用道，引导错峰出行。",
    "农村互助幸福院运营经费不足，建议民政局将运营补贴纳入财政预算，保障老人日常照料。",
    "建议市场监管局加强校园周边食品安全检查，对无证小摊贩依法取缔，保障学生饮食安全。",
    "临水县古村落保护不力，建议文旅局编制保护规划，对明清民居修缮给予补助，发展乡村旅游。",
    "建议卫生健康委在县级医院增设儿科夜间门诊，补齐基层儿科医生缺口，方便患儿就医。",
    "垃圾分类推进缓慢，建议城管局在小区增设分类投放点，配备督导员，完善后端分类处理设施。",
    "建议医保局扩大门诊慢特病报销病种，简化异地就医备案手续，减轻患者负担。",
]


def _pool(texts: list[str], titles: list[str] | None = None):
    """A pool whose first rows are `texts` (indexes 0..), followed by the filler proposals."""
    titles = (titles or ["" for _ in texts]) + ["" for _ in FILLER]
    texts = list(texts) + FILLER
    ids = [f"p{i}" for i in range(len(texts))]
    return build_pool(ids, titles, texts, fake_vectors(texts))


def test_clean_for_overlap_drops_masks_space_and_punctuation() -> None:
    assert clean_for_overlap("A市**区，  幸福 小区！") == "a市区幸福小区"


def test_shipped_calibration_matches_feature_list() -> None:
    cal = DedupCalibration.load()
    assert cal.features == FEATURE_NAMES
    assert len(cal.coef) == len(FEATURE_NAMES)


def test_calibration_with_wrong_features_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "cal.json"
    bad.write_text(
        '{"features": ["cosine"], "coef": [1], "intercept": 0, "mean": [0], "scale": [1]}'
    )
    with pytest.raises(ValueError, match="do not match"):
        DedupCalibration.load(bad)


def test_calibration_round_trip(tmp_path: Path) -> None:
    cal = DedupCalibration.load()
    cal.save(tmp_path / "c.json")
    again = DedupCalibration.load(tmp_path / "c.json")
    assert np.allclose(again.coef, cal.coef, atol=1e-6)
    assert again.threshold == pytest.approx(cal.threshold, abs=1e-4)


def test_shipped_threshold_is_recorded_with_its_rule() -> None:
    cal = DedupCalibration.load()
    assert 0.0 < cal.threshold < 1.0
    assert "precision" in str(cal.info.get("threshold_rule"))
    assert cal.info.get("real_pairs", 0) >= 400


def test_identical_texts_are_exact_and_high() -> None:
    pool = _pool([BASE, BASE.replace("，", ", "), OTHER])
    [pair] = score_pool(pool, [(0, 1)])
    assert pair.kind == "exact"
    assert pair.score >= 0.99


def test_near_verbatim_is_near_and_scores_above_unrelated() -> None:
    pool = _pool([BASE, NEAR, OTHER])
    near, unrelated = score_pool(pool, [(0, 1), (0, 2)])
    assert near.kind == "near"
    assert unrelated.kind == "semantic"
    assert near.score > 0.5 > unrelated.score


def test_different_place_lowers_the_score() -> None:
    pool = _pool([BASE, NEAR, OTHER_PLACE])
    same = pair_features(pool, 0, 1)
    moved = pair_features(pool, 0, 2)
    i = FEATURE_NAMES.index("entity_mismatch")
    assert moved[i] > same[i]
    # With a calibration that weighs the difference, the score drops. (The shipped fit may
    # give this feature a small weight: the rare-term features carry most of it.)
    cal = DedupCalibration.load()
    coef = list(cal.coef)
    coef[i] = -1.0
    scorer = DuplicateScorer(replace(cal, coef=tuple(coef)))
    moved_same_overlap = moved.copy()
    moved_same_overlap[i] = same[i]
    assert scorer.probabilities(moved)[0] < scorer.probabilities(moved_same_overlap)[0]


EROSION = "白河临水县段坡耕地水土流失严重，淤地坝老化失修，建议整合资金对病险淤地坝除险加固。"
EROSION_REWORDED = "建议对白河临水段病险淤地坝除险加固，集中治理坡耕地水土流失，整合各部门资金。"
DIKES = "白河临水县段堤防老化失修，汛期多处管涌，建议整合资金对白河堤防除险加固提高防洪标准。"
SEWAGE = "白河临水县段沿岸生活污水直排，建议整合资金建设污水管网，白河水质亟待改善。"


def test_rarity_weights_discount_terms_every_text_shares() -> None:
    sigs = [signature("", t) for t in (EROSION, EROSION_REWORDED, DIKES, SEWAGE)]
    idf = rarity_weights(sigs)
    assert idf["白河临"] < idf["淤地坝"]  # in all four texts vs in two
    pair = rarity_weights(sigs[:2])
    shared = sigs[0].shingles & sigs[1].shingles
    assert {pair[t] for t in shared} == {1.0}  # in both of two texts: as common as can be


def test_shared_rare_terms_outweigh_a_shared_theme() -> None:
    texts = [EROSION, EROSION_REWORDED, DIKES, SEWAGE]
    pool = _pool(
        texts,
        ["坡耕地水土流失治理", "淤地坝除险加固和水土流失治理", "白河堤防加固", "白河污水治理"],
    )
    same = pair_features(pool, 0, 1)
    theme = pair_features(pool, 0, 2)
    for name in ("rare_jaccard", "rare_containment", "title_rare"):
        i = FEATURE_NAMES.index(name)
        assert same[i] > theme[i], name
    # The theme words count less once weighted by rarity.
    j, r = FEATURE_NAMES.index("char_jaccard"), FEATURE_NAMES.index("rare_jaccard")
    assert theme[r] < theme[j]


def test_same_theme_other_matter_scores_below_the_same_matter_reworded() -> None:
    texts = [EROSION, EROSION_REWORDED, DIKES, SEWAGE, BASE]
    pool = _pool(texts)
    reworded, dikes, sewage = score_pool(pool, [(0, 1), (0, 2), (0, 3)])
    assert reworded.score > max(dikes.score, sewage.score)


def test_form_letter_about_another_estate_is_not_floored_as_near() -> None:
    """A copy with only the estate's name changed is `near`, but not forced above the flag."""
    pool = _pool([BASE, OTHER_PLACE, OTHER])
    [letter] = score_pool(pool, [(0, 1)])
    assert letter.kind == "near"
    assert pair_features(pool, 0, 1)[FEATURE_NAMES.index("disjoint_places")] in (0.0, 1.0)


def test_longest_shared_passage_sees_a_quoted_paragraph() -> None:
    quoted = "我再次反映：" + BASE[:60] + "至今没有答复。"
    pool = _pool([BASE, quoted, OTHER])
    i = FEATURE_NAMES.index("longest_shared")
    assert pair_features(pool, 0, 1)[i] > np.log1p(50) > pair_features(pool, 0, 2)[i]


def test_anonymisation_masks_do_not_count_as_overlap() -> None:
    masked_a = "我是*****小区业主，" + "*" * 40 + "物业不作为"
    masked_b = "我是*****学校家长，" + "*" * 40 + "食堂太贵了"
    f = pair_features(_pool([masked_a, masked_b]), 0, 1)
    assert f[FEATURE_NAMES.index("char_jaccard")] < 0.2


def test_scores_rise_with_similarity() -> None:
    scorer = DuplicateScorer()
    pool = _pool([BASE, OTHER, NEAR])
    low, high = pair_features(pool, 0, 1), pair_features(pool, 0, 2)
    assert scorer.probabilities(high)[0] > scorer.probabilities(low)[0]


def test_wrong_feature_width_is_an_error() -> None:
    with pytest.raises(ValueError, match="features per pair"):
        DuplicateScorer().probabilities(np.zeros((1, 3)))


def test_pool_scores_pairs_whose_other_texts_were_not_encoded() -> None:
    """Scoring given pairs needs vectors only for their texts; the rest feed the statistics."""
    texts = [BASE, NEAR, OTHER, SEWAGE, *FILLER]
    ids = [f"p{i}" for i in range(len(texts))]
    vecs = fake_vectors(texts)
    vecs[2:] = 0.0
    pool = build_pool(ids, [""] * len(texts), texts, vecs)
    full = build_pool(ids, [""] * len(texts), texts, fake_vectors(texts))
    assert score_pool(pool, [(0, 1)])[0].score == pytest.approx(score_pool(full, [(0, 1)])[0].score)


def test_char_candidates_find_copies_and_exact_repeats() -> None:
    texts = [BASE, OTHER, NEAR, BASE]
    sigs = [signature("", t) for t in texts]
    found = char_candidates(sigs)
    assert {(0, 2), (0, 3), (2, 3)} <= found
    assert (0, 1) not in found


def test_candidate_pairs_skip_against_against_and_orient_data_first() -> None:
    texts = [OTHER, BASE, NEAR]  # row 0 from --data, rows 1-2 from --against
    pool = build_pool(["d1", "a1", "a2"], ["", "", ""], texts, fake_vectors(texts), n_data=1)
    pairs = candidate_pairs(pool, k=2)
    assert pairs and all(i < pool.n_data for i, _ in pairs)
    assert (1, 2) not in pairs


@pytest.mark.smoke
def test_real_e5_rewording_beats_same_theme_other_matter() -> None:
    from model.encoder import load_encoder

    reworded = (
        "幸福小区是东城区的老旧小区，十二栋六层住宅都没有电梯，四成居民已过六十岁，爬楼成了难题。"
        "希望住建部门出面，把加装电梯的审批手续简化，每台给予补贴，并做好低层住户的协调工作。"
    )
    other_matter = BASE.replace("加装电梯", "物业服务").replace("上下楼十分困难", "物业费长期拖欠")
    texts = [BASE, reworded, other_matter, OTHER]
    vecs = load_encoder(None).encode(texts)
    pool = build_pool([f"p{i}" for i in range(4)], ["", "", "", ""], texts, vecs)
    rewording, unrelated = score_pool(pool, [(0, 1), (0, 3)])
    assert rewording.kind == "semantic"
    assert rewording.score > unrelated.score


def test_batched_cosines_give_the_same_features_as_one_pair_at_a_time() -> None:
    # The scorer computes the TF-IDF cosines of all pairs in one sparse product.
    titles = ["关于加装电梯的建议", "关于加装电梯补贴的建议", "关于污水治理的建议", ""]
    pool = _pool([BASE, NEAR, OTHER, OTHER_PLACE], titles)
    pairs = [(0, 1), (0, 2), (1, 3), (2, 3), (0, 5)]
    one_by_one = np.vstack([pair_features(pool, i, j) for i, j in pairs])
    probs, _ = DuplicateScorer().score(pool, pairs)
    scorer = DuplicateScorer()
    expected = scorer.floored(one_by_one, scorer.probabilities(one_by_one))
    np.testing.assert_allclose(probs, expected, rtol=1e-9)
    assert one_by_one[:, FEATURE_NAMES.index("char_tfidf")].max() > 0.5
