"""Unit routing on the Teddy 2020 replies: the unit directory's prior and the neighbour vote.

    .venv/bin/python benchmarks/units_directory.py --teddy DIR \
        [--units benchmarks/teddy_units.csv] [--seed 0] [--vectors VECTORS.npy] [--results FILE] \
        [--demo data/demo/proposals.csv] [--skip-louo]

Rows: replies.csv rows with a main_unit (20 unit types). Three measurements:

(a) the directory prior alone (each message matched to each unit's name, aliases and duties;
    nothing learnt from the rows): top-1, top-3, macro-F1 over all rows.
(b) leave one unit out: for each unit, all of its rows are removed from training, TF-IDF +
    LinearSVC (training.baseline.fit_baseline) is fitted on the rest and blended linearly with the
    prior, ``(1 - λ) * baseline + λ * prior``; reported: the share of the unit's rows where it
    reaches top-3, for λ fitted by log-loss on out-of-fold baseline scores of the split in (c)
    (no unit removed there, as in use) and for a fixed grid of λ.
(c) a stratified 75/25 split (the same as benchmarks/classify.py --task unit): NeighbourVote
    alone, TF-IDF + LinearSVC alone, the prior alone, and linear blends whose weights are fitted
    by log-loss on 5-fold out-of-fold scores of the training part: macro-F1, accuracy, top-3, ECE.

(d) with `--demo`: the demo city (train 2022–2023, test 2024; data/units.csv): category and
    main unit for the baseline, the vote and the prior alone, and the baseline backed off to
    the prior (model.units.blend_with_prior).

`--vectors FILE.npy` mixes e5 cosine into the neighbour vote: the passage vectors of the rows
with a main_unit, in replies.csv order; with `--encode` they are computed by the default encoder
(multilingual-e5-small) and saved there first. Keep FILE outside the repository (for example
under /tmp): it is derived from the Teddy rows. The data folder is only read.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import model.features as features  # noqa: E402
from model.calibration import expected_calibration_error, fit_weights, softmax  # noqa: E402
from model.records import Proposal, read_proposals  # noqa: E402
from model.retrieval import NeighbourVote  # noqa: E402
from model.units import UnitDirectory, blend_with_prior  # noqa: E402
from training.baseline import fit_baseline  # noqa: E402
from training.data import stratified_split  # noqa: E402

HERE = Path(__file__).resolve().parent
LAMBDAS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0)


def cache_jieba() -> None:
    """Tokenise each text once: the leave-one-unit-out runs fit the baseline 26 times."""
    features.jieba_words = functools.lru_cache(maxsize=None)(features.jieba_words)  # type: ignore[assignment]


def load_rows(teddy: Path) -> list[Proposal]:
    rows = [p for p in read_proposals(teddy / "replies.csv") if p.main_unit]
    for p in rows:
        p.category = None  # replies.csv has no category; the unit head alone
        p.co_units = []
    return rows


def baseline_scores(
    train: Sequence[Proposal], texts: Sequence[str], units: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """The baseline's calibrated probabilities (0 for units it never saw) and its decision
    values (the row's median for units it never saw, as model.ensemble.align does), both with
    columns in `units` order."""
    model = fit_baseline(list(train))
    probs = model.predict_proba(list(texts))["main_unit"]
    raw = model.raw_scores(list(texts))["main_unit"]
    out = np.zeros((len(texts), len(units)))
    out_raw = np.repeat(np.median(raw, axis=1)[:, None], len(units), axis=1)
    for j, label in enumerate(model.labels["main_unit"]):
        out[:, units.index(label)] = probs[:, j]
        out_raw[:, units.index(label)] = raw[:, j]
    return out, out_raw


def log_linear(raw: np.ndarray, prior: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """softmax(w_b * decision values + w_p * log prior): the `auto` ensemble's kind of blend."""
    return softmax(weights[0] * raw + weights[1] * np.log(np.clip(prior, 1e-6, None)))


def vote_proba(
    train_texts: Sequence[str],
    train_y: Sequence[str],
    texts: Sequence[str],
    units: list[str],
    vectors: tuple[np.ndarray, np.ndarray] | None,
    k: int,
) -> np.ndarray:
    vote = NeighbourVote(k).fit(
        list(train_texts),
        {"main_unit": list(train_y)},
        {"main_unit": units},
        vectors=None if vectors is None else vectors[0],
    )
    return vote.predict_proba(list(texts), None if vectors is None else vectors[1])["main_unit"]


def fit_mixture(parts: list[np.ndarray], y: np.ndarray) -> np.ndarray:
    """Simplex weights of a linear pool sum_i w_i p_i with the least log-loss on (parts, y)."""
    picked = np.stack([p[np.arange(len(y)), y] for p in parts], axis=1)

    def loss(z: np.ndarray) -> float:
        w = np.exp(z - z.max())
        w /= w.sum()
        return float(-np.log(np.clip(picked @ w, 1e-12, None)).mean())

    z = minimize(loss, np.zeros(len(parts)), method="Nelder-Mead").x
    w = np.exp(z - z.max())
    return w / w.sum()


def metrics(probs: np.ndarray, y: np.ndarray, units: list[str]) -> dict[str, float]:
    top = np.argsort(-probs, axis=1)
    pred = top[:, 0]
    truth_names = [units[i] for i in y]
    return {
        "macro_f1": round(
            float(
                f1_score(
                    truth_names,
                    [units[i] for i in pred],
                    labels=sorted(set(truth_names)),
                    average="macro",
                    zero_division=0,
                )
            ),
            4,
        ),
        "accuracy": round(float((pred == y).mean()), 4),
        "top3": round(float(np.mean([y[i] in top[i, :3] for i in range(len(y))])), 4),
        "ece": round(float(expected_calibration_error(probs, y)), 4),
        "log_loss": round(
            float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None)).mean()), 4
        ),
    }


def fit_temperature(
    directory: UnitDirectory, texts: list[str], y: np.ndarray, units: list[str]
) -> float:
    """The prior's softmax temperature with the least log-loss on these rows."""
    cos = directory.scores(texts)
    cols = [directory.names().index(directory.canonical(u) or u) for u in units]
    cos = cos[:, cols]
    best_t, best = 1.0, np.inf
    for t in np.geomspace(0.005, 0.5, 41):
        z = cos / t
        z -= z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        nll = float(-logp[np.arange(len(y)), y].mean())
        if nll < best:
            best_t, best = float(t), nll
    return best_t


def near_repeat_figures(
    tr_texts: list[str],
    y_tr: np.ndarray,
    te_texts: list[str],
    y_te: np.ndarray,
    p_base: np.ndarray,
    thresholds: Sequence[float] = (0.8, 0.9, 0.95),
) -> dict:
    """How many test rows nearly repeat a training row, and how often inheriting that row's
    unit is right, beside the baseline's accuracy on the same rows."""
    vote = NeighbourVote().fit(tr_texts, {}, {})  # lexical repeats need no labels
    out = {}
    for cut in thresholds:
        found = vote.near_repeats(te_texts, min_similarity=cut)
        rows = [i for i, f in enumerate(found) if f is not None]
        inherited = [y_tr[found[i][0]] == y_te[i] for i in rows]  # type: ignore[index]
        baseline = [p_base[i].argmax() == y_te[i] for i in rows]
        out[str(cut)] = {
            "share_of_test_rows": round(len(rows) / len(te_texts), 4),
            "rows": len(rows),
            "inherited_accuracy": round(float(np.mean(inherited)), 4) if rows else None,
            "baseline_accuracy_same_rows": round(float(np.mean(baseline)), 4) if rows else None,
        }
    print("near repeats (char TF-IDF cosine ≥ cut):", json.dumps(out), flush=True)
    return out


def leave_one_unit_out(
    rows: list[Proposal],
    texts: list[str],
    y_all: np.ndarray,
    units: list[str],
    prior_all: np.ndarray,
    lam_fitted: float,
    loglinear_weights: Sequence[float],
) -> dict:
    """For each unit: fit the baseline without any of its rows, blend with the prior, and count
    how often the unit reaches top-3 on its own rows. Four blends: the plain linear pool;
    :func:`model.units.blend_with_prior`, which backs off to the prior for units with no rows;
    the log-linear blend with the median filled in for the unseen unit (weights fitted in (c));
    and that log-linear blend backed off to the prior for the unseen unit."""
    grid = sorted({*LAMBDAS, round(lam_fitted, 3)})
    louo: dict = {}
    for u, unit in enumerate(units):
        held = np.flatnonzero(y_all == u)
        kept = np.flatnonzero(y_all != u)
        p_b, raw_b = baseline_scores([rows[i] for i in kept], [texts[i] for i in held], units)
        p_p = prior_all[held]
        counts = np.bincount(y_all[kept], minlength=len(units))
        shares: dict = {"linear": {}, "backoff": {}}
        p_ll = log_linear(raw_b, p_p, loglinear_weights)
        top3_ll = np.argsort(-p_ll, axis=1)[:, :3]
        loglinear_share = round(float(np.mean([u in t for t in top3_ll])), 4)
        # The log-linear blend for the units the baseline knows, backed off to the prior for
        # the unit it never saw (weight 0: the pool adds nothing else).
        top3_hy = np.argsort(-blend_with_prior(p_ll, p_p, counts, 0.0), axis=1)[:, :3]
        hybrid_share = round(float(np.mean([u in t for t in top3_hy])), 4)
        for lam in grid:
            for name, blended in (
                ("linear", (1 - lam) * p_b + lam * p_p),
                ("backoff", blend_with_prior(p_b, p_p, counts, lam)),
            ):
                top3 = np.argsort(-blended, axis=1)[:, :3]
                shares[name][lam] = round(float(np.mean([u in t for t in top3])), 4)
        prior_top3 = np.argsort(-p_p, axis=1)[:, :3]
        louo[unit] = {
            "rows": int(len(held)),
            "prior_alone_top3": round(float(np.mean([u in t for t in prior_top3])), 4),
            "top3_share": shares,
            "loglinear_median_fill_top3": loglinear_share,
            "loglinear_backoff_top3": hybrid_share,
        }
        print(
            f"  left out {unit} ({len(held)} rows): λ={lam_fitted:.3f} linear "
            f"{shares['linear'][round(lam_fitted, 3)]:.2f}, backoff {shares['backoff'][round(lam_fitted, 3)]:.2f}, "
            f"log-linear {loglinear_share:.2f}, log-linear + back-off {hybrid_share:.2f}",
            flush=True,
        )
    lam = round(lam_fitted, 3)
    print(
        f"\n(b) leave one unit out: share of the unit's rows where it reaches top-3 "
        f"(λ={lam} fitted out of fold in (c); the baseline never saw the unit)"
    )
    print(
        f"{'unit':<24}{'rows':>5}{'prior':>7}{'linear':>8}{'backoff':>8}   backoff at λ="
        + " ".join(f"{k:g}" for k in grid)
    )
    for unit, r in louo.items():
        sh = r["top3_share"]
        print(
            f"{unit:<24}{r['rows']:>5}{r['prior_alone_top3']:>7.2f}{sh['linear'][lam]:>8.2f}{sh['backoff'][lam]:>8.2f}"
            f"{r['loglinear_median_fill_top3']:>8.2f}{r['loglinear_backoff_top3']:>8.2f}   "
            + " ".join(f"{sh['backoff'][k]:.2f}" for k in grid)
        )
    summary = {}
    for name in ("linear", "backoff"):
        for k in grid:
            shares = [r["top3_share"][name][k] for r in louo.values()]
            summary[f"{name}@{k:g}"] = {
                "mean_share": round(float(np.mean(shares)), 4),
                "units_at_least_half": int(sum(s >= 0.5 for s in shares)),
            }
    ll = [r["loglinear_median_fill_top3"] for r in louo.values()]
    summary["loglinear_median_fill"] = {
        "mean_share": round(float(np.mean(ll)), 4),
        "units_at_least_half": int(sum(x >= 0.5 for x in ll)),
    }
    hy = [r["loglinear_backoff_top3"] for r in louo.values()]
    summary["loglinear_backoff"] = {
        "mean_share": round(float(np.mean(hy)), 4),
        "units_at_least_half": int(sum(x >= 0.5 for x in hy)),
    }
    for key, v in summary.items():
        print(
            f"{key:<14} mean share {v['mean_share']:.3f}, units reaching half: {v['units_at_least_half']}/{len(louo)}"
        )
    return {"lambda_fitted": lam_fitted, "units": louo, "summary": summary}


def demo(path: Path, units_csv: Path) -> dict:
    """The demo city: train on 2022–2023, test on 2024 (units mapped by data/unit_aliases.csv).

    Category and main unit for the baseline and the vote alone, the prior alone, and the
    baseline backed off to the prior at a few weights."""
    from model.aliases import load_aliases

    rows, _ = load_aliases().apply(read_proposals(path))
    train = [p for p in rows if p.year is not None and p.year < 2024]
    test = [p for p in rows if p.year == 2024]
    directory = UnitDirectory.load(units_csv)
    units = directory.names()
    te_texts = [p.text for p in test]
    model = fit_baseline(train)
    p_base = model.predict_proba(te_texts)
    categories = model.labels["category"]
    labels = {
        "category": [p.category for p in train],
        "main_unit": [p.main_unit for p in train],
        "co_units": [list(p.co_units) for p in train],
    }
    order = {"category": categories, "main_unit": units, "co_units": model.labels["co_units"]}
    p_vote = NeighbourVote().fit([p.text for p in train], labels, order).predict_proba(te_texts)
    y_cat = np.array([categories.index(p.category) for p in test])
    y_unit = np.array([units.index(p.main_unit) for p in test])
    p_base_unit = np.zeros((len(test), len(units)))
    for j, label in enumerate(model.labels["main_unit"]):
        p_base_unit[:, units.index(label)] = p_base["main_unit"][:, j]
    prior = directory.prior(te_texts, units)
    counts = np.array([sum(p.main_unit == u for p in train) for u in units])
    out = {
        "train_rows": len(train),
        "test_rows": len(test),
        "units_without_training_rows": [u for u, c in zip(units, counts, strict=True) if c == 0],
        "category": {
            "baseline": metrics(p_base["category"], y_cat, categories),
            "vote": metrics(p_vote["category"], y_cat, categories),
        },
        "main_unit": {
            "baseline": metrics(p_base_unit, y_unit, units),
            "vote": metrics(p_vote["main_unit"], y_unit, units),
            "prior": metrics(prior, y_unit, units),
        },
    }
    for w in (0.1, 0.2, 0.316):
        blended = blend_with_prior(p_base_unit, prior, counts, w)
        out["main_unit"][f"baseline+prior@{w:g}"] = metrics(blended, y_unit, units)
    print("\ndemo (train 2022–2023, test 2024)")
    print(f"{'head':<10}{'model':<22}{'macro-F1':>9}{'acc':>7}{'top-3':>7}{'ECE':>7}{'logloss':>8}")
    for head in ("category", "main_unit"):
        for name, r in out[head].items():
            print(
                f"{head:<10}{name:<22}{r['macro_f1']:>9.3f}{r['accuracy']:>7.3f}{r['top3']:>7.3f}"
                f"{r['ece']:>7.3f}{r['log_loss']:>8.3f}"
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--teddy", type=Path, required=True, help="folder with replies.csv")
    parser.add_argument(
        "--demo",
        type=Path,
        help="also the demo city: this proposals file with data/units.csv (2024 held out)",
    )
    parser.add_argument("--demo-units", type=Path, default=HERE.parent / "data" / "units.csv")
    parser.add_argument("--units", type=Path, default=HERE / "teddy_units.csv")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=10, help="neighbours in the vote")
    parser.add_argument("--vectors", type=Path, help="e5 vectors of the rows (.npy), optional")
    parser.add_argument("--encode", action="store_true", help="compute --vectors first")
    parser.add_argument("--skip-louo", action="store_true", help="only (a) and (c)")
    parser.add_argument("--results", type=Path, help="write all figures as JSON here")
    args = parser.parse_args()
    started = time.perf_counter()
    cache_jieba()

    rows = load_rows(args.teddy)
    directory = UnitDirectory.load(args.units)
    units = sorted({p.main_unit for p in rows if p.main_unit})
    missing = [u for u in units if not directory.is_current(u)]
    if missing:
        raise SystemExit(f"units missing from {args.units}: {', '.join(missing)}")
    texts = [p.text for p in rows]
    y_all = np.array([units.index(p.main_unit) for p in rows])
    if args.encode:
        if not args.vectors:
            raise SystemExit("--encode needs --vectors FILE.npy to write to")
        from model.encoder import load_encoder

        t0 = time.perf_counter()
        np.save(args.vectors, load_encoder().encode(texts, kind="passage", progress=True))
        print(f"encoded {len(texts)} rows in {time.perf_counter() - t0:.0f} s", flush=True)
    vectors = np.load(args.vectors) if args.vectors else None
    if vectors is not None and len(vectors) != len(rows):
        raise SystemExit(
            f"--vectors has {len(vectors)} rows, replies.csv has {len(rows)} with a unit"
        )
    results: dict = {"rows": len(rows), "units": len(units)}

    # (a) the prior alone
    prior_all = directory.prior(texts, units)
    results["prior_alone"] = metrics(prior_all, y_all, units) | {
        "temperature": directory.temperature,
        "temperature_fitted_all_rows": fit_temperature(directory, texts, y_all, units),
    }
    print("(a) prior alone:", json.dumps(results["prior_alone"]), flush=True)

    # (c) stratified split: members alone and blended
    train, test = stratified_split(rows, "main_unit", 0.25, args.seed)
    position = {id(p): i for i, p in enumerate(rows)}
    tr_idx = np.array([position[id(p)] for p in train])
    te_idx = np.array([position[id(p)] for p in test])
    y_tr, y_te = y_all[tr_idx], y_all[te_idx]
    tr_texts, te_texts = [texts[i] for i in tr_idx], [texts[i] for i in te_idx]
    tr_units = [units[i] for i in y_tr]

    def vecs(fit_idx: np.ndarray, query_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        return None if vectors is None else (vectors[fit_idx], vectors[query_idx])

    t0 = time.perf_counter()
    p_base, raw_base = baseline_scores(train, te_texts, units)
    base_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    p_vote = vote_proba(tr_texts, tr_units, te_texts, units, vecs(tr_idx, te_idx), args.k)
    vote_seconds = time.perf_counter() - t0
    p_prior = prior_all[te_idx]

    # Out-of-fold scores of the training part fit the blend weights (never the test rows).
    oof = {name: np.zeros((len(train), len(units))) for name in ("base", "raw", "vote")}
    folds = StratifiedKFold(5, shuffle=True, random_state=args.seed)
    for fit, held in folds.split(np.zeros(len(train)), y_tr):
        oof["base"][held], oof["raw"][held] = baseline_scores(
            [train[i] for i in fit], [tr_texts[i] for i in held], units
        )
        oof["vote"][held] = vote_proba(
            [tr_texts[i] for i in fit],
            [tr_units[i] for i in fit],
            [tr_texts[i] for i in held],
            units,
            vecs(tr_idx[fit], tr_idx[held]),
            args.k,
        )
    oof_prior = prior_all[tr_idx]
    split: dict = {
        "train_rows": len(train),
        "test_rows": len(test),
        "baseline": metrics(p_base, y_te, units) | {"fit_predict_s": round(base_seconds, 1)},
        "vote": metrics(p_vote, y_te, units) | {"fit_predict_s": round(vote_seconds, 2)},
        "prior": metrics(p_prior, y_te, units),
    }
    combos = {
        "baseline+prior": (["base", "prior"], [p_base, p_prior]),
        "baseline+vote": (["base", "vote"], [p_base, p_vote]),
        "baseline+vote+prior": (["base", "vote", "prior"], [p_base, p_vote, p_prior]),
    }
    oof_parts = {"base": oof["base"], "vote": oof["vote"], "prior": oof_prior}
    for name, (members, test_parts) in combos.items():
        w = fit_mixture([oof_parts[m] for m in members], y_tr)
        blended = sum(wi * p for wi, p in zip(w, test_parts, strict=True))
        split[name] = metrics(blended, y_te, units) | {
            "weights": dict(zip(members, [round(float(x), 3) for x in w], strict=True))
        }
    ll_weights = fit_weights([oof["raw"], np.log(np.clip(oof_prior, 1e-6, None))], y_tr)
    split["baseline+prior log-linear"] = metrics(
        log_linear(raw_base, p_prior, ll_weights), y_te, units
    ) | {"weights": {"base": round(ll_weights[0], 3), "log_prior": round(ll_weights[1], 3)}}
    split["near_repeats"] = near_repeat_figures(tr_texts, y_tr, te_texts, y_te, p_base)
    results["split"] = split
    lam_fitted = split["baseline+prior"]["weights"]["prior"]
    print("\n(c) stratified 75/25 split (weights fitted out of fold on the training part)")
    print(f"{'model':<22}{'macro-F1':>9}{'acc':>7}{'top-3':>7}{'ECE':>7}{'logloss':>8}  weights")
    for name in ("baseline", "vote", "prior", *combos, "baseline+prior log-linear"):
        r = split[name]
        print(
            f"{name:<22}{r['macro_f1']:>9.3f}{r['accuracy']:>7.3f}{r['top3']:>7.3f}{r['ece']:>7.3f}"
            f"{r['log_loss']:>8.3f}  {r.get('weights', '')}",
            flush=True,
        )

    # (b) leave one unit out
    if not args.skip_louo:
        results["leave_one_unit_out"] = leave_one_unit_out(
            rows, texts, y_all, units, prior_all, lam_fitted, ll_weights
        )
    if args.demo:
        results["demo"] = demo(args.demo, args.demo_units)
    results["seconds"] = round(time.perf_counter() - started, 1)
    print(f"\ntotal {results['seconds']} s")
    if args.results:
        args.results.write_text(json.dumps(results, ensure_ascii=False, indent=1), "utf-8")


if __name__ == "__main__":
    main()
