"""The "no topic" cut-off: fitted on an answer key, shipped in model/topic_calibration.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from model.topics import DEFAULT_WEIGHTS, DEFAULT_WEIGHTS_PATH, TOPIC_FEATURES, weights_from_json
from training.topic_cutoff import (
    calibration_json,
    cutoff_figures,
    data_margins,
    fit_cutoff,
    fit_margin_cutoff,
    out_of_fold_figures,
    top_k_scores,
)
from training.topic_weights import TopicData, fit_topic_weights


def test_fit_finds_the_cut_off_that_separates_unanswered_topics() -> None:
    # Three proposals, four topics: T0 and T1 are answered (scores 0.3, 0.25), T2 and T3
    # are not and only get weak scores (0.1, 0.05); 0.5 would call every topic unanswered.
    scores = np.array([[0.30, 0.00, 0.10, 0.0], [0.00, 0.25, 0.00, 0.05], [0.0, 0.0, 0.08, 0.0]])
    truth = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]], dtype=bool)
    fitted = fit_cutoff(scores, truth)
    assert 0.1 < fitted["cutoff"] < 0.25
    assert fitted["topics_without_proposal"] | {"f1": 1.0} == {
        "predicted": 2,
        "true": 2,
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
    }
    assert fitted["proposals_without_topic"]["recall"] == 1.0
    assert cutoff_figures(scores, truth, 0.5)["topics_without_proposal"]["predicted"] == 4


def test_fit_margin_cutoff_picks_the_best_f1_cut() -> None:
    # Flagging below 0.2 finds 1 of 2 (F1 0.67); below 0.325, 1 of 2 flagged right (0.5);
    # below 0.575, both with one false alarm (0.8, the best); below 0.85, both of 4 (0.67).
    margins = np.array([0.1, 0.3, 0.35, 0.8, 0.9])
    answered = np.array([False, True, False, True, True])
    fitted = fit_margin_cutoff(margins, answered)
    assert fitted["cutoff"] == 0.575
    assert fitted["proposals_without_topic"] == {
        "predicted": 3,
        "true": 2,
        "precision": 0.6667,
        "recall": 1.0,
        "f1": 0.8,
    }


@pytest.mark.parametrize(
    ("margins", "answered", "message"),
    [
        ([0.1, 0.2], [True, True], "both with and without"),
        ([0.1, 0.1, 0.1], [True, False, True], "two distinct"),
        ([0.1, 0.2], [True], "same length"),
    ],
)
def test_fit_margin_cutoff_rejects_what_it_cannot_fit(
    margins: list[float], answered: list[bool], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        fit_margin_cutoff(np.array(margins), np.array(answered))


def test_top_k_keeps_what_the_service_stores() -> None:
    probs = np.array([[0.1, 0.4, 0.3, 0.2]])
    assert top_k_scores(probs, 2).tolist() == [[0.0, 0.4, 0.3, 0.0]]


def test_shipped_cut_off_is_the_fitted_one_and_beats_one_half() -> None:
    data = json.loads(DEFAULT_WEIGHTS_PATH.read_text(encoding="utf-8"))
    fitted = data["info"]["cutoff"]["at_fitted"]
    assert DEFAULT_WEIGHTS.threshold == data["threshold"] == fitted["cutoff"]
    half = data["info"]["cutoff"]["at_0.5"]
    # Closer to the answer key's count of topics without a proposal than 0.5 was.
    true = fitted["topics_without_proposal"]["true"]
    assert abs(fitted["topics_without_proposal"]["predicted"] - true) < abs(
        half["topics_without_proposal"]["predicted"] - true
    )
    assert fitted["topics_without_proposal"]["f1"] > half["topics_without_proposal"]["f1"]


def test_shipped_no_topic_figures_are_those_of_the_margin_rule() -> None:
    data = json.loads(DEFAULT_WEIGHTS_PATH.read_text(encoding="utf-8"))
    at_fitted = data["info"]["cutoff"]["at_fitted"]
    margin = data["info"]["no_topic"]["at_fitted"]
    assert DEFAULT_WEIGHTS.no_topic_margin == data["no_topic_margin"] == margin["cutoff"]
    assert at_fitted["proposals_without_topic"] == margin["proposals_without_topic"]
    # Kept because it found more proposals without a topic than the cut-off rule did.
    by_cutoff = at_fitted["proposals_without_topic_by_cutoff"]
    assert margin["proposals_without_topic"]["f1"] > by_cutoff["f1"]


def _separable_data(n: int = 20, m: int = 6) -> TopicData:
    # Proposal i answers topic i % 4 (topics 4 and 5 get none; every fifth proposal answers
    # nothing); the first feature (the cosine) is 1 exactly on answered pairs, so a fit can
    # separate them. A proposal that answers nothing sits halfway between topics 4 and 5,
    # so no topic stands out for it: its standout margin is near zero.
    truth = np.zeros((n, m), dtype=bool)
    for i in range(n):
        if i % 5:
            truth[i, i % 4] = True
    rng = np.random.RandomState(0)
    feats = rng.uniform(0, 0.1, size=(n, m, len(TOPIC_FEATURES)))
    feats[..., 0] += truth
    feats[~truth.any(axis=1), 4:, 0] += 0.5
    return TopicData([f"p{i}" for i in range(n)], [f"T{j}" for j in range(m)], feats, truth)


def test_out_of_fold_figures_pool_held_out_decisions() -> None:
    oof = out_of_fold_figures(_separable_data(), folds=5, seed=0)
    assert oof["folds"] == 5
    for name in ("topics_without_proposal", "proposals_without_topic"):
        assert oof[name]["precision"] == oof[name]["recall"] == 1.0
    assert oof["topics_without_proposal"]["true"] == 2
    assert oof["proposals_without_topic"]["true"] == 4
    with pytest.raises(ValueError, match="at least 5 proposals"):
        out_of_fold_figures(_separable_data(n=3), folds=5)


def test_calibration_json_states_what_it_was_fitted_on() -> None:
    data = _separable_data()
    weights, _ = fit_topic_weights(data)
    content = calibration_json(weights, data, seeds=(0,))
    assert len(content["coef"]) == len(TOPIC_FEATURES)
    cut = content["info"]["cutoff"]
    assert content["threshold"] == cut["at_fitted"]["cutoff"]
    assert "in-sample" in cut["fitted_on"] and len(cut["out_of_fold"]) == 1
    # The no-topic margin separates this data; its figures are the proposals' figures.
    margin = content["no_topic_margin"]
    assert margin == content["info"]["no_topic"]["at_fitted"]["cutoff"]
    flagged = data_margins(data) < margin
    assert flagged.tolist() == (~data.truth.any(axis=1)).tolist()
    assert cut["at_fitted"]["proposals_without_topic"]["f1"] == 1.0


def test_calibration_json_without_proposals_lacking_a_topic_keeps_the_cut_off_rule() -> None:
    data = _separable_data()
    truth = data.truth.copy()
    truth[~truth.any(axis=1), 0] = True
    data = TopicData(data.proposal_ids, data.topic_ids, data.features, truth)
    weights, _ = fit_topic_weights(data)
    content = calibration_json(weights, data, seeds=(0,))
    assert "no_topic_margin" not in content
    assert content["info"]["no_topic"]["at_fitted"]["cutoff"] is None


def test_shipped_calibration_has_out_of_fold_figures() -> None:
    data = json.loads(DEFAULT_WEIGHTS_PATH.read_text(encoding="utf-8"))
    assert len(data["coef"]) == len(TOPIC_FEATURES)
    folds = data["info"]["cutoff"]["out_of_fold"]
    assert folds and all("proposals_without_topic" in f for f in folds)


def test_tian_fit_topic_weights_writes_the_calibration(
    tmp_path: Path, tiny_backbone_dir: Path
) -> None:
    from tian.cli import main

    demo = tmp_path / "demo"
    demo.mkdir()
    rows = ["提案号,年度,案由,提案内容"]
    texts = ["加装电梯", "污水治理", "乡村旅游", "电梯补贴", "河道污水", "网约车"]
    rows += [f"2024-{i:03d},2024,关于{t}的建议,建议{t}{t}" for i, t in enumerate(texts)]
    (demo / "proposals.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (demo / "topics_2024.csv").write_text(
        "topic_id,topic\nT1,推进加装电梯\nT2,加强污水治理\nT3,发展低空经济\n", encoding="utf-8"
    )
    (demo / "topic_answers.csv").write_text(
        "topic_id,id\nT1,2024-000\nT1,2024-003\nT2,2024-001\nT2,2024-004\n", encoding="utf-8"
    )
    out = tmp_path / "cal.json"
    argv = ["fit", "topic-weights", "--demo", str(demo), "--base-model", str(tiny_backbone_dir)]
    assert main([*argv, "--out", str(out)]) == 0
    written = weights_from_json(out)
    assert len(written.coef) == len(TOPIC_FEATURES) and 0 < written.threshold < 1
    # The cut-off alone, for the weights just written.
    argv[1] = "topic-cutoff"
    assert main([*argv, "--out", str(out)]) == 0
    assert weights_from_json(out).coef == written.coef


def test_tian_fit_topic_cutoff_names_a_missing_file(tmp_path: Path) -> None:
    from tian.cli import main

    assert main(["fit", "topic-cutoff", "--demo", str(tmp_path), "--out", str(tmp_path / "c")]) != 0
