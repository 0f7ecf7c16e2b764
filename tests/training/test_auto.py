"""`--kind auto`: members compared per head out of fold, the review block, the unit directory."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from model.bundle import load_classifier, read_manifest, save_bundle
from model.ensemble import RepeatRule, align, inherit
from model.selective import NEVER, fit_review, selective_threshold
from model.suggest import suggest
from training.auto import AutoConfig, comparison_table, fit_auto
from training.transformer import TransformerConfig

UNITS_CSV = """name,aliases,level,duties,active,successor
市工业和信息化局,工信局,市级,负责工业制造企业园区发展改革,1,
市生态环境局,环保局,市级,负责生态环境河湖污染水土保持流域治理,1,
市卫生健康委员会,卫健委,市级,负责医疗卫生医院健康疾病药品,1,
市教育局,教育局,市级,负责教育学校学生教师课程,1,
市水利局,,市级,负责水利河湖流域,1,
市体育局,,市级,负责体育健身运动场馆赛事全民健身,1,
市老干部局,,市级,已撤销，职责并入市民政局,0,
"""


@pytest.fixture
def tiny_transformer(tiny_backbone_dir):
    return TransformerConfig(
        base_model=str(tiny_backbone_dir),
        max_length=48,
        tail_tokens=8,
        trainable_layers=1,
        epochs=2,
        batch_size=8,
        lr=1e-3,
        head_lr=1e-2,
    )


@pytest.fixture
def units_file(tmp_path):
    path = tmp_path / "units.csv"
    path.write_text(UNITS_CSV, encoding="utf-8")
    return path


def test_auto_compares_members_per_head_and_saves_what_wins(
    toy_proposals, tiny_transformer, units_file, tmp_path
):
    config = AutoConfig(folds=3, transformer=tiny_transformer)
    model, report = fit_auto(toy_proposals, config, units=units_file)

    comparison = report["comparison"]
    assert set(comparison) == {"category", "main_unit", "co_units"}
    tried = {"+".join(r["members"]) for r in comparison["main_unit"]}
    assert {"baseline", "transformer", "neighbours", "directory"} <= tried
    for head, rows in comparison.items():
        assert sum(r["chosen"] for r in rows) == 1  # exactly one candidate serves each head
        chosen = next(r for r in rows if r["chosen"])
        assert model.plans[head].members == chosen["members"]
        assert len(chosen["weights"]) == len(chosen["members"]) > 0
        assert all(w >= 0 for w in chosen["weights"])
    assert "transformer" in report["member_seconds"]
    # The out-of-fold metrics are real numbers, never missing.
    metrics = report["metrics"]
    assert 0 < metrics["category"]["macro_f1"] <= 1 and 0 < metrics["main_unit"]["accuracy"] <= 1
    from model.registry import headline_metrics

    assert headline_metrics({"metrics": metrics})  # the models page can show them
    assert "serves" in comparison_table(report)

    folder = save_bundle(model, tmp_path / "bundle", {"version": "t", "metrics": metrics})
    assert read_manifest(folder)["kind"] == "auto"
    again = load_classifier(folder)
    texts = [p.text for p in toy_proposals[:8]]
    np.testing.assert_allclose(
        again.predict_proba(texts)["category"], model.predict_proba(texts)["category"], atol=1e-5
    )
    rows = suggest(again, [p.id for p in toy_proposals[:8]], texts)
    for row in rows:
        review = row["review"]
        assert set(review) >= {"confidence", "flag", "target_accuracy", "reasons"}
        assert 0 <= review["confidence"] <= 1
        assert review["target_accuracy"] == config.target_accuracy
        assert review["flag"] == (review["confidence"] < again.calibration.review.threshold)


def test_directory_lets_a_unit_without_past_proposals_be_suggested(toy_proposals, units_file):
    config = AutoConfig(members=("baseline", "directory"), folds=3, refit_all=True)
    model, report = fit_auto(toy_proposals, config, units=units_file)
    assert "市体育局" in model.labels["main_unit"]  # listed, but no training row names it
    assert "directory" in {m for r in report["comparison"]["main_unit"] for m in r["members"]}
    # Force the blend that uses the directory, as a head would when it wins out of fold.
    plan = next(
        r for r in report["comparison"]["main_unit"] if r["members"] == ["baseline", "directory"]
    )
    model.plans["main_unit"].members = plan["members"]
    model.plans["main_unit"].weights = [plan["weights"][0], max(plan["weights"][1], 1.0)]
    probs = model.predict_proba(["关于加强全民健身体育场馆建设和体育赛事运动的建议"])
    top3 = np.argsort(-probs["main_unit"][0])[:3]
    assert "市体育局" in [model.labels["main_unit"][i] for i in top3]
    # An inactive unit is never suggested, whatever the members say.
    assert "市老干部局" not in model.labels["main_unit"] or np.all(
        probs["main_unit"][:, model.labels["main_unit"].index("市老干部局")] == 0
    )


def test_unit_without_past_proposals_backs_off_to_the_directory_whatever_wins(
    toy_proposals, units_file, tmp_path
):
    """No forced plan: even when the directory does not win a place in the main-unit blend,
    a unit no past proposal went to takes the prior's share and can reach the top 3."""
    from model.ensemble import EnsembleClassifier

    config = AutoConfig(members=("baseline", "neighbours", "directory"), folds=3)
    model, _ = fit_auto(toy_proposals, config, units=units_file)
    assert "市体育局" in model.unseen["main_unit"]
    assert "directory" in model.members
    text = ["关于加强全民健身体育场馆建设和体育赛事运动的建议"]
    units = model.labels["main_unit"]
    top3 = [units[i] for i in np.argsort(-model.predict_proba(text)["main_unit"][0])[:3]]
    assert "市体育局" in top3
    # The back-off survives saving, and inactive units stay at 0.
    model.save(tmp_path)
    again = EnsembleClassifier.load(tmp_path, model.labels, model.calibration)
    probs = again.predict_proba(text)["main_unit"]
    assert again.unseen == model.unseen
    assert np.allclose(probs, model.predict_proba(text)["main_unit"])
    for gone in model.suppressed.get("main_unit", []):
        assert probs[0, units.index(gone)] == 0.0


def test_inactive_unit_in_training_rows_is_suppressed(toy_proposals, units_file):
    rows = [copy.copy(p) for p in toy_proposals]  # the fixture is shared: never mutate it
    rows[0].main_unit = "市老干部局"  # an abolished unit with no successor in the file
    model, report = fit_auto(rows, AutoConfig(members=("baseline",), folds=3), units=units_file)
    assert report["suppressed_units"]["main_unit"] == ["市老干部局"]
    probs = model.predict_proba([p.text for p in rows[:10]])
    column = model.labels["main_unit"].index("市老干部局")
    assert np.all(probs["main_unit"][:, column] == 0)


def test_selective_threshold_meets_the_target_on_its_rows():
    confidence = np.array([0.99, 0.98, 0.97, 0.9, 0.8, 0.7, 0.6, 0.5])
    correct = np.array([1, 1, 1, 1, 0, 1, 0, 0])
    assert selective_threshold(confidence, correct, 0.95) == 0.9  # top four all right
    assert selective_threshold(confidence, correct, 0.8) == 0.7  # five of six
    assert selective_threshold(np.array([0.9]), np.array([0]), 0.95) == NEVER


def test_higher_target_accuracy_flags_more():
    rng = np.random.default_rng(0)
    n, k = 400, 4
    logits = rng.normal(size=(n, k)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    truth = np.array([rng.choice(k, p=p) for p in probs])  # calibrated by construction
    loose = fit_review({"category": probs}, {"category": truth}, 0.8)
    strict = fit_review({"category": probs}, {"category": truth}, 0.95)
    assert strict.threshold > loose.threshold
    assert strict.expected_flagged > loose.expected_flagged
    assert strict.expected_accuracy >= 0.95 and loose.expected_accuracy >= 0.8


def test_near_repeat_inherits_unless_the_blend_strongly_disagrees():
    labels = {"category": ["a", "b", "c"]}
    probs = {"category": np.array([[0.2, 0.5, 0.3], [0.01, 0.98, 0.01], [0.3, 0.4, 0.3]])}
    rule = RepeatRule(trust={"category": 0.9}, labels={"category": ["a", "c"]})
    out = inherit(probs, [(0, 0.95), (0, 0.97), None], rule, labels)
    assert out["category"][0].argmax() == 0 and out["category"][0, 0] == pytest.approx(0.92)
    np.testing.assert_allclose(out["category"][1], probs["category"][1])  # 0.01 < 0.05: kept
    np.testing.assert_allclose(out["category"][2], probs["category"][2])  # no repeat
    np.testing.assert_allclose(out["category"].sum(1), 1)


def test_align_gives_unknown_labels_the_row_median():
    scores = np.array([[1.0, 3.0, 2.0]])
    out = align(scores, ["a", "b", "c"], ["c", "x", "a"])
    np.testing.assert_allclose(out, [[2.0, 2.0, 1.0]])


def test_train_cli_defaults_to_auto_and_predict_writes_review(
    toy_proposals, tiny_backbone_dir, tmp_path
):
    from model.records import write_proposals
    from tian.cli import main

    data = tmp_path / "rows.csv"
    write_proposals(data, toy_proposals)
    out = tmp_path / "bundle"
    code = main(
        [
            "train", "--data", str(data), "--out", str(out), "--aliases", "none",
            "--base-model", str(tiny_backbone_dir), "--max-length", "32",
            "--members", "baseline", "neighbours", "--target-accuracy", "0.9",
        ]
    )  # fmt: skip
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["kind"] == "auto"
    assert manifest["metrics"] and all(v is not None for v in manifest["metrics"].values())
    assert manifest["auto"]["comparison"]["category"]
    assert manifest["calibration"]["review"]["target_accuracy"] == 0.9
    predictions = tmp_path / "p.jsonl"
    assert (
        main(["predict", "--model", str(out), "--data", str(data), "--out", str(predictions)]) == 0
    )
    lines = [json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == len(toy_proposals)
    assert all(line["review"]["target_accuracy"] == 0.9 for line in lines)
    report_path = tmp_path / "eval" / "report.json"
    assert (
        main(["evaluate", "--model", str(out), "--data", str(data), "--report", str(report_path)])
        == 0
    )
    report = json.loads(report_path.read_text(encoding="utf-8"))
    review = report["review"]
    assert review["target_accuracy"] == 0.9 and 0 <= review["flagged"] <= 1
    assert set(review["joint"]["at_accuracy"]) >= {"0.95", "0.98"}
    assert review["heads"]["category"]["curve"]
    assert (tmp_path / "eval" / "risk_coverage.png").is_file()


def test_frozen_layers_are_encoded_once_for_all_folds(toy_proposals, tiny_transformer, monkeypatch):
    import training.transformer as tt

    calls = []
    real = tt._cache_lower

    def counting(*args, **kwargs):
        calls.append(len(args[1]))
        return real(*args, **kwargs)

    monkeypatch.setattr(tt, "_cache_lower", counting)
    config = AutoConfig(members=("transformer",), folds=3, transformer=tiny_transformer)
    model, report = fit_auto(toy_proposals, config)
    assert calls == [len(toy_proposals)]  # one pass over every row, reused by 3 folds + refit
    assert "transformer" in model.members
    assert report["scheme"].startswith("3-fold")


def test_many_rows_use_one_held_out_fold_and_fine_tune_once(
    toy_proposals, tiny_transformer, caplog
):
    import logging

    config = AutoConfig(
        members=("baseline", "transformer"), many_rows=10, transformer=tiny_transformer
    )
    with caplog.at_level(logging.INFO, logger="training.transformer"):
        model, report = fit_auto(toy_proposals, config)
    assert report["scheme"].startswith("one held-out fold")
    assert 0 < report["oof_rows"] < len(toy_proposals)
    trained = [r for r in caplog.records if r.getMessage().startswith("trained ")]
    assert len(trained) == 1  # fine-tuned once, on the other folds; that network is served
    assert model.calibration.review is not None


def test_models_page_summary_names_the_serving_members():
    from model.ensemble import serving_summary

    manifest = {
        "auto": {
            "comparison": {
                "category": [
                    {"members": ["baseline"], "macro_f1": 0.8, "log_loss": 0.6, "chosen": False},
                    {
                        "members": ["baseline", "neighbours"],
                        "macro_f1": 0.84,
                        "log_loss": 0.5,
                        "chosen": True,
                    },
                ]
            }
        }
    }
    (line,) = serving_summary(manifest)
    assert line.startswith("类别：TF-IDF 线性模型 + 相似往年提案投票") and "0.840" in line
    assert serving_summary({"kind": "baseline"}) == []


def test_co_unit_report_has_precision_and_recall():
    from training.evaluate import multi_label_f1

    target = np.array([[1, 0, 0], [0, 1, 0]], dtype=bool)
    chosen = np.array([[1, 1, 1], [0, 0, 0]], dtype=bool)
    figures = multi_label_f1(target, chosen)
    assert figures["precision"] == pytest.approx(1 / 3) and figures["recall"] == 0.5


def test_review_block_falls_back_for_bundles_without_a_cut():
    from model.selective import review_block

    probs = {"category": np.array([[0.9, 0.1]]), "main_unit": np.array([[0.5, 0.3, 0.2]])}
    block = review_block(None, probs, 0, {"category": False, "main_unit": True})
    assert block["confidence"] == pytest.approx(0.45)  # product of the top scores
    assert block["flag"] is True and block["target_accuracy"] is None
    assert block["reasons"] == ["main_unit_uncertain"]


def test_a_handful_of_rows_with_unique_labels_still_trains(toy_proposals):
    rows = [copy.copy(p) for p in toy_proposals[:6]]
    for i, p in enumerate(rows):
        p.category = f"类{i % 3}" if i < 3 else f"别{i}"  # most labels occur once
    model, report = fit_auto(rows, AutoConfig(members=("baseline", "neighbours")))
    assert report["oof_rows"] == 6
    assert model.predict_proba([rows[0].text])["category"].shape == (
        1,
        len(model.labels["category"]),
    )


def test_co_unit_cut_is_fitted_on_the_served_rule_and_suggestions_clear_it(toy_proposals):
    from model.co_units import CUTS

    model, report = fit_auto(toy_proposals, AutoConfig(members=("baseline",), folds=3))
    cut = model.calibration.co_unit_threshold
    assert cut in CUTS
    co = report["metrics"]["co_units"]
    assert co["threshold"] == cut and 0 <= co["precision"] <= 1 and 0 <= co["recall"] <= 1
    texts = [p.text for p in toy_proposals]
    rows = suggest(model, [p.id for p in toy_proposals], texts)
    probs = model.predict_proba(texts)["co_units"]
    labels = model.labels["co_units"]
    for row, p in zip(rows, probs, strict=True):
        main = row["main_unit"][0]["label"]
        named = [c["label"] for c in row["co_units"]]
        assert main not in named and len(named) <= 3
        assert all(c["score"] >= cut for c in row["co_units"])
        # Every unit that clears the cut is named, up to three (the main unit aside).
        above = [u for u, x in zip(labels, p, strict=True) if x >= cut and u != main]
        assert len(named) == min(3, len(above))
        assert row["abstain"]["co_units"]["suggested_above"] == cut
