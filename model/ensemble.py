"""The `auto` bundle: members blended per head, the blend chosen on out-of-fold predictions.

Members (each optional, fitted on the same rows by `training.auto`):

    baseline     TF-IDF + linear models (decision values)
    transformer  the fine-tuned (or frozen-feature) e5 network (logits)
    neighbours   the labels of the nearest past proposals (model.retrieval.NeighbourVote)
    directory    for main_unit, the match of a proposal to each unit's duties
                 (model.units.UnitDirectory), which lets a unit with no past proposals be
                 suggested

For each head the bundle stores which members serve it and their non-negative weights: the
probabilities are softmax (sigmoid for co-units) of the weighted sum of the members' scores,
so the weights are the calibration. A member's score for a label it never saw is the row's
median score ("no opinion"), so that another member (the directory) can lift that label.
Units the directory marks inactive are never suggested, and a near-verbatim repeat of a
training proposal inherits its labels unless the blend gives them almost no chance.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from model.calibration import Calibration, combine, sigmoid, softmax
from model.heads import HEADS, SINGLE_LABEL_HEADS

log = logging.getLogger(__name__)

ENSEMBLE_FILE = "ensemble.json"
MEMBERS = ("baseline", "transformer", "neighbours", "directory")
MEMBER_NAMES_ZH = {
    "baseline": "TF-IDF 线性模型",
    "transformer": "e5 神经网络",
    "neighbours": "相似往年提案投票",
    "directory": "单位职责目录",
}
DIRECTORY_FILE = "units.csv"


def align(scores: np.ndarray, member_labels: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Columns of `scores` (in `member_labels` order) reordered to `labels`.

    A label the member lacks gets the row's median score: the member has no opinion about it,
    rather than a firm "no" that no other member could overturn.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if list(member_labels) == list(labels):
        return scores
    column = {label: i for i, label in enumerate(member_labels)}
    fill = np.median(scores, axis=1) if scores.shape[1] else np.zeros(scores.shape[0])
    out = np.repeat(fill[:, None], len(labels), axis=1)
    for j, label in enumerate(labels):
        if label in column:
            out[:, j] = scores[:, column[label]]
    return out


def log_scores(probs: np.ndarray, head: str) -> np.ndarray:
    """Probabilities as additive scores: log p (single-label), logit p (co-units)."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p) if head in SINGLE_LABEL_HEADS else np.log(p / (1 - p))


def member_scores(
    name: str, member: Any, texts: Sequence[str], labels: dict[str, list[str]]
) -> dict[str, np.ndarray]:
    """One member's scores per head for `texts`, columns in `labels` order."""
    texts = list(texts)
    if name == "baseline":
        raw = member.raw_scores(texts)
        return {h: align(s, member.labels[h], labels[h]) for h, s in raw.items() if h in labels}
    if name == "transformer":
        from model.transformer import _split_text

        titles, contents = zip(*(_split_text(t) for t in texts), strict=True) if texts else ((), ())
        raw = member.logits(list(titles), list(contents))
        return {h: align(s, member.labels[h], labels[h]) for h, s in raw.items() if h in labels}
    if name == "neighbours":
        probs = member.predict_proba(texts)
        return {
            h: align(log_scores(p, h), member.label_order[h], labels[h])
            for h, p in probs.items()
            if h in labels
        }
    if name == "directory":
        if "main_unit" not in labels:
            return {}
        return {"main_unit": log_scores(member.prior(texts, labels["main_unit"]), "main_unit")}
    raise ValueError(f"unknown ensemble member {name!r}")


class DirectoryPrior:
    """A unit directory as an ensemble member, remembering the file it came from (copied into
    the bundle, so that the bundle keeps the directory it was trained with)."""

    def __init__(self, directory: Any, source: Path) -> None:
        self.directory = directory
        self.source = Path(source)

    def prior(self, texts: Sequence[str], units: Sequence[str]) -> np.ndarray:
        return np.asarray(self.directory.prior(list(texts), list(units)), dtype=np.float64)

    def duties(self, name: str) -> str | None:
        return self.directory.duties(name)


@dataclass
class HeadPlan:
    """Which members serve a head, with their blend weights (the head's calibration)."""

    members: list[str]
    weights: list[float]


@dataclass
class RepeatRule:
    """When a near-verbatim repeat of a training proposal inherits that proposal's labels.

    Attributes:
        min_similarity: character TF-IDF cosine at which a proposal counts as a repeat.
        disagree_below: the blend "strongly disagrees" when it gives the inherited label less
            than this probability; the repeat is then ignored.
        trust: per head, the out-of-fold accuracy of inherited labels, used as the weight of
            the inherited label against the blend (so the result stays calibrated).
        labels: per head, the label of each training row (None where unknown), in the order
            the neighbour index was fitted.
    """

    min_similarity: float = 0.9
    disagree_below: float = 0.05
    trust: dict[str, float] = field(default_factory=dict)
    labels: dict[str, list[Any]] = field(default_factory=dict)


class EnsembleClassifier:
    """Per-head blends of the fitted members; what `tian train --kind auto` saves."""

    kind = "auto"

    def __init__(
        self,
        labels: dict[str, list[str]],
        calibration: Calibration,
        plans: dict[str, HeadPlan],
        members: dict[str, Any],
        *,
        suppressed: dict[str, list[str]] | None = None,
        repeats: RepeatRule | None = None,
        int8: bool = False,
        unseen: dict[str, list[str]] | None = None,
    ) -> None:
        self.labels = labels
        self.unseen = unseen or {}
        self.calibration = calibration
        self.plans = plans
        self.members = members
        self.suppressed = suppressed or {}
        self.repeats = repeats
        self.int8 = int8

    @property
    def heads(self) -> list[str]:
        return [h for h in HEADS if h in self.labels and h in self.plans]

    @property
    def baseline(self) -> Any | None:
        return self.members.get("baseline")

    def scores(self, texts: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
        """Scores of every member that some head uses."""
        needed = {m for plan in self.plans.values() for m in plan.members}
        return {
            name: member_scores(name, self.members[name], texts, self.labels)
            for name in MEMBERS
            if name in needed and name in self.members
        }

    def blend(self, scores: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """Probabilities per head from member scores, inactive units removed."""
        return blend_scores(scores, self.plans, self.labels, self.suppressed)

    def predict_proba(
        self, texts: Sequence[str], *, progress: bool = False
    ) -> dict[str, np.ndarray]:
        """Calibrated probabilities per head, near-verbatim repeats inheriting their labels."""
        texts = list(texts)
        probs = self.blend(self.scores(texts))
        probs = self._back_off_to_directory(texts, probs)
        if self.repeats is not None and "neighbours" in self.members:
            found = self.members["neighbours"].near_repeats(
                texts, min_similarity=self.repeats.min_similarity
            )
            probs = inherit(probs, found, self.repeats, self.labels)
        return probs

    def _back_off_to_directory(
        self, texts: list[str], probs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        unseen = self.unseen.get("main_unit", [])
        if not unseen or "main_unit" not in probs or "directory" not in self.members:
            return probs
        units = self.labels["main_unit"]
        prior = self.members["directory"].prior(texts, units)
        p = directory_back_off(
            probs["main_unit"], prior, units, unseen, self.suppressed.get("main_unit", [])
        )
        return {**probs, "main_unit": p}

    def repeat_ids(self, texts: Sequence[str]) -> list[dict[str, Any] | None] | None:
        """For each text, the training proposal it nearly repeats ({"id", "similarity"})."""
        vote = self.members.get("neighbours")
        if self.repeats is None or vote is None:
            return None
        found = vote.near_repeats(list(texts), min_similarity=self.repeats.min_similarity)
        return [None if f is None else {"id": vote.ids[f[0]], "similarity": f[1]} for f in found]

    def neighbours(self, text: str, k: int = 5) -> list[dict[str, Any]]:
        """The past proposals that voted on `text` (empty without the neighbour member)."""
        vote = self.members.get("neighbours")
        return list(vote.neighbours(text, k)) if vote is not None else []

    def explain(self, text: str, head: str, label: str, top_n: int = 8) -> list[tuple[str, float]]:
        """Words that drove a suggestion, from the baseline member (empty without one)."""
        base = self.members.get("baseline")
        return base.explain(text, head, label, top_n) if base is not None else []

    def describe(self) -> dict[str, Any]:
        """Which members serve which head, with their weights (for the manifest and pages)."""
        return {
            head: {"members": plan.members, "weights": [round(w, 4) for w in plan.weights]}
            for head, plan in self.plans.items()
        }

    def quantize(self) -> EnsembleClassifier:
        """int8 dynamic quantisation of the transformer member (CPU inference)."""
        if "transformer" in self.members:
            self.members["transformer"].quantize()
        return self

    # ------------------------------------------------------------------ persistence
    def save(self, folder: Path) -> None:
        folder = Path(folder)
        for name, member in self.members.items():
            sub = folder / name
            sub.mkdir(parents=True, exist_ok=True)
            if name == "directory":
                shutil.copyfile(member.source, sub / DIRECTORY_FILE)
                continue
            member.save(sub)
            if name in ("baseline", "transformer"):
                meta = {"labels": member.labels, "calibration": member.calibration.to_dict()}
                (sub / "meta.json").write_text(
                    json.dumps(meta, ensure_ascii=False), encoding="utf-8"
                )
        payload = {
            "plans": {h: asdict(p) for h, p in self.plans.items()},
            "members": sorted(self.members),
            "suppressed": self.suppressed,
            "repeats": asdict(self.repeats) if self.repeats is not None else None,
            "int8": self.int8,
            "unseen": self.unseen,
        }
        (folder / ENSEMBLE_FILE).write_text(
            json.dumps(payload, ensure_ascii=False), encoding="utf-8"
        )

    @classmethod
    def load(
        cls, folder: Path, labels: dict[str, list[str]], calibration: Calibration
    ) -> EnsembleClassifier:
        folder = Path(folder)
        payload = json.loads((folder / ENSEMBLE_FILE).read_text(encoding="utf-8"))
        members: dict[str, Any] = {}
        for name in payload["members"]:
            sub = folder / name
            if name == "directory":
                from model.units import UnitDirectory

                path = sub / DIRECTORY_FILE
                members[name] = DirectoryPrior(UnitDirectory.load(path), path)
            elif name == "neighbours":
                from model.retrieval import NeighbourVote

                members[name] = NeighbourVote.load(sub)
            else:
                meta = json.loads((sub / "meta.json").read_text(encoding="utf-8"))
                member_cal = Calibration.from_dict(meta["calibration"])
                if name == "baseline":
                    from model.baseline import BaselineClassifier

                    members[name] = BaselineClassifier.load(sub, meta["labels"], member_cal)
                else:
                    from model.transformer import TransformerClassifier

                    members[name] = TransformerClassifier.load(sub, meta["labels"], member_cal)
        repeats = RepeatRule(**payload["repeats"]) if payload.get("repeats") else None
        model = cls(
            labels,
            calibration,
            {h: HeadPlan(**p) for h, p in payload["plans"].items()},
            members,
            suppressed=payload.get("suppressed") or {},
            repeats=repeats,
            int8=bool(payload.get("int8")),
            unseen=payload.get("unseen") or {},
        )
        if model.int8:
            model.quantize()
        return model


def blend_scores(
    scores: dict[str, dict[str, np.ndarray]],
    plans: dict[str, HeadPlan],
    labels: dict[str, list[str]],
    suppressed: dict[str, list[str]] | None = None,
) -> dict[str, np.ndarray]:
    """softmax/sigmoid of each head's weighted member scores; suppressed labels get 0."""
    out = {}
    for head, plan in plans.items():
        parts = [scores[m][head] for m in plan.members]
        z = combine(parts, plan.weights)
        p = softmax(z) if head in SINGLE_LABEL_HEADS else sigmoid(z)
        gone = [
            labels[head].index(u) for u in (suppressed or {}).get(head, []) if u in labels[head]
        ]
        if gone:
            p = p.copy()
            p[:, gone] = 0.0
            if head in SINGLE_LABEL_HEADS:
                p /= np.clip(p.sum(axis=1, keepdims=True), 1e-12, None)
        out[head] = p
    return out


def directory_back_off(
    probs: np.ndarray,
    prior: np.ndarray,
    units: Sequence[str],
    unseen: Sequence[str],
    suppressed: Sequence[str] = (),
) -> np.ndarray:
    """Main-unit probabilities where units with no past proposals take the directory's share.

    The learned members can only rank units they saw; without this a unit the directory
    lists but no past proposal went to is never in the top 3, however well the proposal
    matches its duties (`model.units.blend_with_prior` with weight 0). Inactive units stay 0.
    """
    from model.units import blend_with_prior

    gone_set = set(unseen)
    counts = np.array([0 if u in gone_set else 1 for u in units])
    p = blend_with_prior(probs, prior, counts, 0.0)
    gone = [list(units).index(u) for u in suppressed if u in units]
    if gone:  # an inactive unit is never suggested, whatever the prior says
        p[:, gone] = 0.0
        p /= np.clip(p.sum(axis=1, keepdims=True), 1e-12, None)
    return p


def inherit(
    probs: dict[str, np.ndarray],
    found: Sequence[tuple[int, float] | None],
    rule: RepeatRule,
    labels: dict[str, list[str]],
) -> dict[str, np.ndarray]:
    """Move probability towards the labels of the training proposal each row repeats.

    p' = t * onehot(inherited) + (1 - t) * p, with t the head's out-of-fold trust, unless the
    blend gives the inherited label less than `rule.disagree_below`. Co-units follow the main
    unit's decision: inherited only when the main unit was.
    """
    out = {h: p.copy() for h, p in probs.items()}
    for i, hit in enumerate(found):
        if hit is None:
            continue
        j = hit[0]
        inherited_main = False
        for head in SINGLE_LABEL_HEADS:
            if head not in out or head not in rule.labels or j >= len(rule.labels[head]):
                continue
            label = rule.labels[head][j]
            if label is None or label not in labels[head]:
                continue
            col = labels[head].index(label)
            if out[head][i, col] < rule.disagree_below:
                continue  # the other members strongly disagree: keep their view
            t = rule.trust.get(head, 0.0)
            out[head][i] *= 1 - t
            out[head][i, col] += t
            inherited_main |= head == "main_unit"
        if inherited_main and "co_units" in out and "co_units" in rule.labels:
            units = rule.labels["co_units"][j]
            if units is not None:
                t = rule.trust.get("main_unit", 0.0)
                target = np.array([1.0 if u in units else 0.0 for u in labels["co_units"]])
                out["co_units"][i] = (1 - t) * out["co_units"][i] + t * target
    return out


_HEAD_ZH = {"category": "类别", "main_unit": "主办单位", "co_units": "协办单位"}


def serving_summary(manifest: dict[str, Any]) -> list[str]:
    """For the models page: which members serve each head of an `auto` bundle, and why (its
    out-of-fold figures), one Chinese line per head; empty for other kinds."""
    auto = manifest.get("auto") or {}
    lines = []
    for head, rows in (auto.get("comparison") or {}).items():
        chosen = next((r for r in rows if r.get("chosen")), None)
        if chosen is None:
            continue
        names = " + ".join(MEMBER_NAMES_ZH.get(m, m) for m in chosen["members"])
        key, metric = ("micro_f1", "微F1") if head == "co_units" else ("macro_f1", "宏F1")
        lines.append(
            f"{_HEAD_ZH.get(head, head)}：{names}（交叉验证{metric} {chosen[key]:.3f}，"
            f"对数损失 {chosen['log_loss']:.3f}；{len(rows)} 个候选中{metric}接近最佳且对数损失最低）"
        )
    return lines
