"""Fitting the duplicate scorer (training/dedup_scorer.py) and its command, `tian fit dedup-scorer`."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np
import pytest

from training import dedup_scorer as ds

WORDS = [
    "城市",
    "道路",
    "交通",
    "停车",
    "学校",
    "医院",
    "河道",
    "污染",
    "社区",
    "养老",
    "农村",
    "供水",
    "公交",
    "垃圾",
    "电梯",
    "绿地",
]


def _pairs_data(tmp_path: Path, n: int = 12) -> tuple[Path, Path, list[ds.LabelledPair]]:
    """A proposals file and labelled pairs: each duplicate pair shares its text but a few
    characters, each unrelated pair shares nothing but common words."""
    from model.records import Proposal, write_proposals

    rng = random.Random(0)
    records, pairs = [], []
    for i in range(n):
        body = "".join(rng.choice(WORDS) for _ in range(40))
        title = f"关于{rng.choice(WORDS)}{rng.choice(WORDS)}问题的建议"
        records.append(Proposal(id=f"d{i}a", year=2024, title=title, content=body))
        records.append(
            Proposal(id=f"d{i}b", year=2024, title=title, content=body[:-4] + "尽快解决")
        )
        pairs.append((f"d{i}a", f"d{i}b", "duplicate"))
    for i in range(n):
        a = "".join(rng.choice(WORDS[:8]) for _ in range(40))
        b = "".join(rng.choice(WORDS[8:]) for _ in range(40))
        records.append(Proposal(id=f"u{i}a", year=2024, title=f"关于{a[:4]}的建议", content=a))
        records.append(Proposal(id=f"u{i}b", year=2024, title=f"关于{b[:4]}的建议", content=b))
        pairs.append((f"u{i}a", f"u{i}b", "related" if i % 3 == 0 else "unrelated"))
    messages = tmp_path / "proposals.csv"
    write_proposals(messages, records)
    pairs_csv = tmp_path / "pairs.csv"
    with open(pairs_csv, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id_a", "id_b", "label"])
        writer.writerows(pairs)
    return messages, pairs_csv, pairs


def test_a_bad_label_names_its_row(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text("id_a,id_b,label\n1,2,duplicate\n3,4,same\n", encoding="utf-8")
    with pytest.raises(ValueError, match="row 3: label 'same'"):
        ds.read_labelled_pairs(path)
    path.write_text("a,b,label\n", encoding="utf-8")
    with pytest.raises(ValueError, match="missing columns"):
        ds.read_labelled_pairs(path)


def test_the_threshold_keeps_precision_and_leaves_related_pairs_unflagged() -> None:
    scores = np.array([0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4])
    labels = np.array([1, 1, 1, 0, 1, 1, 0, 0])
    related = np.array([0, 0, 0, 1, 0, 0, 1, 0])
    # Down to 0.6 precision is 5/6 < 0.9; down to 0.85 it is 1 with no related pair flagged.
    threshold, recall = ds.choose_threshold(scores, labels, related, precision=0.9)
    assert threshold == pytest.approx(0.85)
    assert recall == pytest.approx(3 / 5)
    # A looser precision may go lower, but never flag more than 10% of the related pairs:
    # 0.8 is a related pair (one of two), so the cut stops above it.
    threshold, _ = ds.choose_threshold(scores, labels, related, precision=0.8)
    assert threshold == pytest.approx(0.85)


def test_fitted_scorer_ranks_duplicates_above_the_rest(tmp_path: Path, tiny_backbone_dir) -> None:
    from model.dedup import DedupCalibration, DuplicateScorer
    from model.encoder import load_encoder

    messages, _, pairs = _pairs_data(tmp_path)
    texts = ds.read_pair_texts(messages)
    cal = ds.fit_dedup_scorer(pairs, texts, load_encoder(str(tiny_backbone_dir)), cache=None)
    assert cal.info["real_pairs"] == len(pairs)
    assert cal.info["real_duplicates"] == 12
    assert 0 < cal.threshold < 1
    # Scored afresh from its saved form, as the pipeline would load it.
    cal.save(tmp_path / "cal.json")
    scorer = DuplicateScorer(DedupCalibration.load(tmp_path / "cal.json"))
    pool = ds.texts_pool(texts, pairs, load_encoder(str(tiny_backbone_dir)), None)
    x, y = ds.pair_matrix(pool, pairs)
    p = scorer.probabilities(x)
    assert p[y == 1].min() > p[y == 0].max()


def test_too_few_pairs_of_a_class_is_refused(tmp_path: Path, tiny_backbone_dir) -> None:
    from model.encoder import load_encoder

    messages, _, pairs = _pairs_data(tmp_path, n=3)
    with pytest.raises(ValueError, match="need at least 5 duplicate"):
        ds.fit_dedup_scorer(
            pairs, ds.read_pair_texts(messages), load_encoder(str(tiny_backbone_dir))
        )


def test_fit_dedup_scorer_command(tmp_path: Path, tiny_backbone_dir, capsys) -> None:
    from model.dedup import DedupCalibration
    from tian.cli import main

    messages, pairs_csv, _ = _pairs_data(tmp_path)
    out = tmp_path / "out" / "dedup_calibration.json"
    argv = ["fit", "dedup-scorer", "--pairs", str(pairs_csv), "--messages", str(messages)]
    argv += ["--base-model", str(tiny_backbone_dir), "--cache", str(tmp_path / "cache")]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    assert "threshold" in capsys.readouterr().out
    cal = DedupCalibration.load(out)
    assert cal.info["fitted_on"] == "24 labelled pairs of proposals.csv"
    # Errors name what is wrong and write nothing.
    bad = tmp_path / "bad.json"
    missing = ["fit", "dedup-scorer", "--pairs", str(tmp_path / "nope.csv"), "--messages"]
    assert main([*missing, str(messages), "--out", str(bad)]) != 0
    assert "nope.csv" in capsys.readouterr().err
    assert main([*argv, "--teddy", str(tmp_path), "--out", str(bad)]) != 0
    assert "not both" in capsys.readouterr().err
    assert not bad.exists()
