"""Comparing two bundles: metrics side by side, changed predictions, aliases, plots, CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from model.aliases import load_aliases
from model.bundle import load_classifier, save_bundle
from training.baseline import fit_baseline
from training.compare import changed_predictions, compare_models, per_class_changes
from training.config import BaselineConfig
from training.data import summarise

OLD_NAME = "市卫生和计划生育委员会"


@pytest.fixture(scope="module")
def bundles(toy_proposals: list, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An old model trained on 2022 under a unit's old name, a new one on 2022–2023."""
    root = tmp_path_factory.mktemp("bundles")
    old_rows = [
        replace(p, main_unit=OLD_NAME) if p.main_unit == "市卫生健康委员会" else p
        for p in toy_proposals
        if p.year == 2022
    ]
    new_rows = [p for p in toy_proposals if p.year in (2022, 2023)]
    out = {}
    for name, rows in (("old", old_rows), ("new", new_rows)):
        clf = fit_baseline(rows, BaselineConfig(folds=3))
        manifest = {"version": f"toy-{name}", "training_data": summarise(rows)}
        out[name] = save_bundle(clf, root / name, manifest)
    return out


def test_compare_models_report(bundles: dict[str, Path], toy_proposals: list) -> None:
    old, new = (load_classifier(bundles[k]) for k in ("old", "new"))
    test = [p for p in toy_proposals if p.year == 2024]
    history = [p for p in toy_proposals if p.year < 2024]
    report = compare_models(old, new, test, aliases=load_aliases(), history=history)
    assert report["rows"] == len(test)
    assert report["years"] == [2024]
    cat = report["heads"]["category"]
    assert set(cat["old"]) >= {"accuracy", "macro_f1", "ece", "top3", "set_coverage"}
    assert cat["delta"]["macro_f1"] == pytest.approx(
        cat["new"]["macro_f1"] - cat["old"]["macro_f1"], abs=1e-4
    )
    assert {c["label"] for c in cat["per_class"]} == {
        "工业经济",
        "生态环境",
        "医疗卫生",
        "教育科技",
    }
    assert set(cat["calibration"]) == {"old", "new"}
    changed = cat["changed_predictions"]
    assert changed["rows"] == len(test)
    assert changed["fixed"] + changed["broken"] + changed["other"] == changed["changed"]
    # The old model's column under the old unit name was merged into the current name, so
    # its health proposals are not counted as unseen labels.
    unit = report["heads"]["main_unit"]
    assert unit["old"]["unseen_label_rows"] == 0
    assert "市卫生健康委员会" in {c["label"] for c in unit["per_class"]}
    assert report["drift"]["years"] == {"old": [2022, 2023], "new": [2024]}
    assert report["verdict"]["summary"]
    json.dumps(report, ensure_ascii=False, default=float)  # serialisable


def test_without_aliases_the_old_name_is_a_different_label(
    bundles: dict[str, Path], toy_proposals: list
) -> None:
    old, new = (load_classifier(bundles[k]) for k in ("old", "new"))
    test = [p for p in toy_proposals if p.year == 2024]
    report = compare_models(old, new, test)
    assert report["heads"]["main_unit"]["old"]["unseen_label_rows"] > 0
    assert "drift" not in report


def test_changed_predictions_and_per_class() -> None:
    out = changed_predictions(
        ["a", "b", "c", "d"], ["x", "x", "y", "y"], ["x", "y", "x", "y"], ["y", "x", "z", "y"]
    )
    assert (out["changed"], out["fixed"], out["broken"], out["other"]) == (3, 1, 1, 1)
    assert out["examples"]["fixed"] == [{"id": "b", "true": "x", "old": "y", "new": "x"}]
    rows = per_class_changes(
        {"per_class": {"x": {"f1": 0.5, "support": 3}}},
        {"per_class": {"x": {"f1": 0.75, "support": 3}, "y": {"f1": 0.0, "support": 1}}},
    )
    assert [(r["label"], r["delta"]) for r in rows] == [("x", 0.25), ("y", 0.0)]


def test_cli_compare_promote_rollback(
    bundles: dict[str, Path], toy_proposals: list, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from model.records import write_proposals
    from tian.cli import main

    data = tmp_path / "toy.jsonl"
    write_proposals(data, toy_proposals)
    out = tmp_path / "cmp"
    args = ["compare", "--model", str(bundles["old"]), "--model", str(bundles["new"])]
    assert main([*args, "--data", str(data), "--out", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["data"]["years"] == [2024]
    assert printed["models"]["new"]["version"] == "toy-new"
    assert "reports" not in printed  # the full per-model reports go to report.json only
    saved = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert "reports" in saved
    names = {Path(p).name for p in saved["plots"]}
    assert {"per_class_f1_category.png", "calibration_category.png"} <= names
    assert "labels_by_year_main_unit.png" in names
    assert all((out / n).stat().st_size > 1000 for n in names)

    # The registry: add both, promote, compare by version, roll back.
    root = ["models", "--root", str(tmp_path / "models")]
    for name in ("old", "new"):
        assert main([*root, "add", str(bundles[name])]) == 0
    assert main([*root, "promote", "toy-old"]) == 0
    assert main([*root, "promote", "toy-new"]) == 0
    capsys.readouterr()
    assert main([*root, "list"]) == 0
    listing = capsys.readouterr().out
    assert "* toy-new" in listing
    compare_by_version = ["compare", "--root", str(tmp_path / "models"), "--data", str(data)]
    assert main([*compare_by_version, "--model", "toy-old", "--model", "live"]) == 0
    capsys.readouterr()
    assert main([*root, "rollback", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == "toy-old"
    assert main([*root, "rollback"]) == 2  # nothing before toy-old
    assert "nothing to roll back to" in capsys.readouterr().err
    assert main([*root, "promote", "nope"]) == 2
    assert "no model version 'nope'" in capsys.readouterr().err
    assert main(["compare", "--model", str(bundles["old"]), "--data", str(data)]) == 2
    assert "exactly twice" in capsys.readouterr().err


def test_compare_prints_a_summary_and_checks_files_first(
    bundles: dict[str, Path], toy_proposals: list, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from model.records import write_proposals
    from tian.cli import main

    data = tmp_path / "toy.jsonl"
    write_proposals(data, toy_proposals)
    args = ["compare", "--model", str(bundles["old"]), "--model", str(bundles["new"])]
    assert main([*args, "--data", str(data)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("compare toy-old (old) with toy-new (new) on ")
    category = next(line for line in lines if line.strip().startswith("category"))
    assert "macro_f1" in category and "->" in category and "fixed" in category
    assert "broken" in category and "ece" in category
    assert any(line.startswith("verdict: ") for line in lines)
    assert len(lines) < 12 and not out.lstrip().startswith("{")
    # A missing file is reported before any model is loaded (a broken bundle is not touched).
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{}", encoding="utf-8")
    missing = tmp_path / "missing.csv"
    assert (
        main(["compare", "--model", str(broken), "--model", str(broken), "--data", str(missing)])
        == 2
    )
    assert f"{missing}: no such file" in capsys.readouterr().err


def test_models_commands_print_one_line(
    bundles: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from tian.cli import main

    root = ["models", "--root", str(tmp_path / "models")]
    assert main([*root, "add", str(bundles["old"]), "--promote"]) == 0
    assert main([*root, "add", str(bundles["new"])]) == 0
    capsys.readouterr()
    assert main([*root, "promote", "toy-new"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("promoted toy-new (baseline, live): ")
    assert "rows, years 2022,2023" in out[0] and out[1].startswith(
        "rollback would return to toy-old"
    )
    assert main([*root, "rollback"]) == 0
    assert capsys.readouterr().out.startswith("rolled back to toy-old (baseline, live)")
    assert main([*root, "list"]) == 0
    listing = capsys.readouterr().out
    assert "* toy-old" in listing and "not recorded" in listing
    assert main([*root, "history", "--json"]) == 0
    assert [e["action"] for e in json.loads(capsys.readouterr().out)][-1] == "rollback"
