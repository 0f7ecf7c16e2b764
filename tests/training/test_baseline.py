import numpy as np

from model.bundle import load_classifier, read_manifest, save_bundle
from model.suggest import suggest
from training.baseline import fit_baseline
from training.data import split_by_year
from training.evaluate import evaluate


def test_baseline_learns_toy_themes_and_round_trips(toy_proposals, tmp_path):
    train, test = split_by_year(toy_proposals)
    model = fit_baseline(train)
    assert set(model.heads) == {"category", "main_unit", "co_units"}
    report = evaluate(model, test)
    assert report["heads"]["category"]["accuracy"] >= 0.9
    assert 0.0 <= report["heads"]["category"]["ece"] <= 1.0

    save_bundle(model, tmp_path / "bundle", {"version": "t1"})
    assert read_manifest(tmp_path / "bundle")["kind"] == "baseline"
    again = load_classifier(tmp_path / "bundle")
    texts = [p.text for p in test]
    for head in ("category", "main_unit", "co_units"):
        np.testing.assert_allclose(
            again.predict_proba(texts)[head], model.predict_proba(texts)[head]
        )


def test_suggestions_follow_the_predict_format(toy_proposals):
    model = fit_baseline(toy_proposals)
    rows = suggest(model, ["a", "b"], [toy_proposals[0].text, "完全无关"], top_k=2)
    assert [r["id"] for r in rows] == ["a", "b"]
    first = rows[0]
    assert first["category"][0]["label"] == toy_proposals[0].category
    assert first["category"][0]["score"] >= first["category"][1]["score"]
    assert (
        abs(
            sum(
                c["score"]
                for c in suggest(model, ["a"], [toy_proposals[0].text], top_k=9)[0]["category"]
            )
            - 1
        )
        < 1e-3
    )
    flag = first["abstain"]["category"]
    assert flag["flag"] == (len(flag["prediction_set"]) > 1)
    assert first["category"][0]["label"] in flag["prediction_set"]


def test_rows_without_a_unit_are_masked_not_dropped(toy_proposals):
    model = fit_baseline(toy_proposals)
    # Rows lacking main_unit still train the category head; the unit head sees only labelled rows.
    assert model.calibration.heads["category"].calibration_rows == len(toy_proposals)
    assert model.calibration.heads["main_unit"].calibration_rows == sum(
        1 for p in toy_proposals if p.main_unit
    )


def test_explain_names_words_of_the_text(toy_proposals):
    model = fit_baseline(toy_proposals)
    p = toy_proposals[1]
    words = model.explain(p.text, "category", p.category)
    assert words and all(w in p.text.lower() for w, _ in words)
