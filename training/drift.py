"""Drift between years: how next year's proposals differ from the ones a model learnt from.

Four views, each cheap enough to run on every retraining:
- label distribution per head: Jensen–Shannon divergence, new and vanished labels, biggest
  share changes;
- handling-unit names: names that are neither current nor in the alias map (someone must add
  them), old names still in use, and names of units that were split;
- vocabulary: JS divergence and out-of-vocabulary rate of jieba words and character bigrams,
  and the words that are new and frequent;
- length: characters per proposal, with a two-sample Kolmogorov–Smirnov statistic.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from model.aliases import AliasMap
from model.heads import SINGLE_LABEL_HEADS, multi_targets, single_targets
from model.records import Proposal

_HAN = re.compile(r"[\u4e00-\u9fff]")
_TOP = 10


def js_divergence(a: Counter[str], b: Counter[str]) -> float:
    """Jensen–Shannon divergence (base 2, so 0 = same distribution, 1 = disjoint) of two
    count tables."""
    keys = sorted(set(a) | set(b))
    if not keys:
        return 0.0
    p = np.array([a.get(k, 0) for k in keys], dtype=float)
    q = np.array([b.get(k, 0) for k in keys], dtype=float)
    if p.sum() == 0 or q.sum() == 0:
        return 1.0 if p.sum() != q.sum() else 0.0
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(x: np.ndarray) -> float:
        nz = x > 0
        return float(np.sum(x[nz] * np.log2(x[nz] / m[nz])))

    return max(0.0, (kl(p) + kl(q)) / 2)


def label_counts(proposals: Sequence[Proposal], head: str) -> Counter[str]:
    """How often each label of `head` occurs (co-units: once per proposal naming it)."""
    if head in SINGLE_LABEL_HEADS:
        return Counter(t for t in single_targets(proposals, head) if t)
    return Counter(u for units in multi_targets(proposals, head) for u in units)


def label_shift(old: Counter[str], new: Counter[str]) -> dict[str, Any]:
    """JS divergence, new and vanished labels, and the largest changes in share."""
    n_old, n_new = max(sum(old.values()), 1), max(sum(new.values()), 1)
    shares = {
        k: {
            "old": round(old.get(k, 0) / n_old, 4),
            "new": round(new.get(k, 0) / n_new, 4),
            "old_count": old.get(k, 0),
            "new_count": new.get(k, 0),
        }
        for k in set(old) | set(new)
    }
    moved = sorted(shares, key=lambda k: -abs(shares[k]["new"] - shares[k]["old"]))
    return {
        "js_divergence": round(js_divergence(old, new), 4),
        "labels_old": len(old),
        "labels_new": len(new),
        "new_labels": sorted(set(new) - set(old)),
        "vanished_labels": sorted(set(old) - set(new)),
        "largest_shifts": [{"label": k, **shares[k]} for k in moved[:_TOP]],
    }


def unit_names(
    old: Sequence[Proposal],
    new: Sequence[Proposal],
    aliases: AliasMap | None,
    known: Iterable[str] = (),
) -> dict[str, Any]:
    """Unit names in `new` (as written, before aliases): which are unknown, stale or split.

    A name is known when it occurs in `old` (after aliasing), in `known` (a model's labels) or
    among the alias map's current names. Unknown names are what the office must add to the
    alias file (a new unit, or a new spelling of an old one).
    """
    aliases = aliases or AliasMap()
    seen = set(known)
    for p in old:
        for name in [p.main_unit, *p.co_units]:
            if name:
                seen.add(aliases.canonical(name))
    used: Counter[str] = Counter(name for p in new for name in [p.main_unit, *p.co_units] if name)
    status = {name: aliases.status(name, seen) for name in used}
    return {
        "unknown": {n: used[n] for n in sorted(used) if status[n] == "unknown"},
        "aliased": {
            n: {"current": aliases.canonical(n), "rows": used[n]}
            for n in sorted(used)
            if status[n] == "alias"
        },
        "split": {
            n: {"successors": aliases.splits[n], "rows": used[n]}
            for n in sorted(used)
            if status[n] == "split"
        },
    }


def _words(texts: Iterable[str]) -> Counter[str]:
    import jieba

    jieba.setLogLevel(60)  # jieba prints its dictionary loading at INFO
    return Counter(w for t in texts for w in jieba.lcut(t) if len(w) > 1 and _HAN.search(w))


def _bigrams(texts: Iterable[str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for t in texts:
        han = "".join(_HAN.findall(t))
        counts.update(han[i : i + 2] for i in range(len(han) - 1))
    return counts


def vocabulary_shift(old_texts: Sequence[str], new_texts: Sequence[str]) -> dict[str, Any]:
    """JS divergence and OOV rate (share of new tokens never seen in old) for jieba words and
    character bigrams, plus the most frequent new words."""
    out: dict[str, Any] = {}
    for name, count in (("words", _words), ("char_bigrams", _bigrams)):
        a, b = count(old_texts), count(new_texts)
        total = max(sum(b.values()), 1)
        out[name] = {
            "js_divergence": round(js_divergence(a, b), 4),
            "oov_rate": round(sum(n for k, n in b.items() if k not in a) / total, 4),
            "types_old": len(a),
            "types_new": len(b),
        }
        if name == "words":
            fresh = [(k, n) for k, n in b.most_common() if k not in a and n >= 2]
            out[name]["new_frequent"] = [{"word": k, "count": n} for k, n in fresh[:20]]
    return out


def length_shift(old_texts: Sequence[str], new_texts: Sequence[str]) -> dict[str, Any]:
    """Characters per proposal: mean, median and 90th percentile, and the KS statistic."""
    from scipy.stats import ks_2samp

    def stats(texts: Sequence[str]) -> dict[str, float]:
        n = np.array([len(t) for t in texts], dtype=float)
        if not len(n):
            return {"mean": math.nan, "median": math.nan, "p90": math.nan}
        return {
            "mean": round(float(n.mean()), 1),
            "median": float(np.median(n)),
            "p90": float(np.percentile(n, 90)),
        }

    out: dict[str, Any] = {"old": stats(old_texts), "new": stats(new_texts)}
    if old_texts and new_texts:
        ks = ks_2samp([len(t) for t in old_texts], [len(t) for t in new_texts])
        out["ks_statistic"] = round(float(ks.statistic), 4)
        out["ks_p_value"] = round(float(ks.pvalue), 4)
    return out


def drift_report(
    old: Sequence[Proposal],
    new: Sequence[Proposal],
    *,
    aliases: AliasMap | None = None,
    known_units: Iterable[str] = (),
) -> dict[str, Any]:
    """Everything above between `old` (what a model learnt from) and `new` (the year ahead).

    Label shifts are measured after mapping unit names through `aliases`, so a rename does not
    show up as one label vanishing and another appearing; the raw names are checked by
    `unit_names`.
    """
    if not old or not new:
        raise ValueError("drift needs proposals on both sides")
    mapped_old, mapped_new = old, new
    if aliases is not None:
        mapped_old, _ = aliases.apply(old)
        mapped_new, _ = aliases.apply(new)
    years = {
        "old": sorted({p.year for p in old if p.year is not None}),
        "new": sorted({p.year for p in new if p.year is not None}),
    }
    old_texts, new_texts = [p.text for p in old], [p.text for p in new]
    return {
        "years": years,
        "rows": {"old": len(old), "new": len(new)},
        "labels": {
            head: label_shift(label_counts(mapped_old, head), label_counts(mapped_new, head))
            for head in ("category", "main_unit", "co_units")
        },
        "unit_names": unit_names(old, new, aliases, known_units),
        "vocabulary": vocabulary_shift(old_texts, new_texts),
        "length": length_shift(old_texts, new_texts),
    }
