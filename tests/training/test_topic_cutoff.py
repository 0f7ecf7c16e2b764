"""The "no topic" cut-off: fitted on an answer key, shipped in model/topic_calibration.json."""

from __future__ import annotations

import json

import numpy as np

from model.topics import DEFAULT_WEIGHTS, DEFAULT_WEIGHTS_PATH
from training.topic_cutoff import cutoff_figures, fit_cutoff, top_k_scores


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
