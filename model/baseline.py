"""The TF-IDF + linear baseline: the fast fallback and the yardstick for every other model.

Fitting lives in `training.baseline`; this module only predicts, explains and loads/saves.
Weights are stored with joblib (pickle): load only bundles you trust, as with any model file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from model.calibration import Calibration, sigmoid, softmax
from model.heads import HEADS, SINGLE_LABEL_HEADS

WEIGHTS_FILE = "baseline.joblib"


class BaselineClassifier:
    """Calibrated linear models over shared TF-IDF features, one per head.

    `single` maps a single-label head to a fitted linear classifier with `decision_function`;
    `multi` is a fitted one-vs-rest classifier for co-units (or None when there were none).
    """

    kind = "baseline"

    def __init__(
        self,
        vectorizer: Any,
        single: dict[str, Any],
        multi: Any | None,
        labels: dict[str, list[str]],
        calibration: Calibration,
    ) -> None:
        self.vectorizer = vectorizer
        self.single = single
        self.multi = multi
        self.labels = labels
        self.calibration = calibration

    @property
    def heads(self) -> list[str]:
        return [h for h in HEADS if h in self.labels]

    def raw_scores(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Uncalibrated decision values per head, columns in `labels[head]` order."""
        x = self.vectorizer.transform(list(texts))
        scores: dict[str, np.ndarray] = {}
        for head, clf in self.single.items():
            s = clf.decision_function(x)
            scores[head] = np.column_stack([-s, s]) if s.ndim == 1 else s
        if self.multi is not None:
            scores["co_units"] = np.asarray(self.multi.decision_function(x)).reshape(x.shape[0], -1)
        return scores

    def predict_proba(
        self, texts: Sequence[str], *, progress: bool = False
    ) -> dict[str, np.ndarray]:
        """Calibrated probabilities per head (rows sum to 1 for single-label heads)."""
        probs = {}
        for head, s in self.raw_scores(texts).items():
            t = self.calibration.heads[head].temperature if head in self.calibration.heads else 1.0
            probs[head] = softmax(s, t) if head in SINGLE_LABEL_HEADS else sigmoid(s, t)
        return probs

    def explain(self, text: str, head: str, label: str, top_n: int = 8) -> list[tuple[str, float]]:
        """The features of `text` that pushed hardest towards `label` (term, contribution)."""
        if head not in self.single or label not in self.labels[head]:
            return []
        x = self.vectorizer.transform([text]).tocsr()
        clf = self.single[head]
        coef = clf.coef_
        row = self.labels[head].index(label)
        weights = coef[0] * (1 if row == 1 else -1) if coef.shape[0] == 1 else coef[row]
        names = self.feature_names()
        contributions = [
            (str(names[j]).split("__", 1)[-1], float(v * weights[j]))
            for j, v in zip(x.indices, x.data, strict=True)
        ]
        contributions = [c for c in contributions if c[1] > 0 and c[0].strip()]
        contributions.sort(key=lambda c: -c[1])
        # A word and the same characters as an n-gram are one reason to a reader: keep the first.
        unique: dict[str, float] = {}
        for term, weight in contributions:
            unique.setdefault(term, weight)
        return list(unique.items())[:top_n]

    def feature_names(self) -> Any:
        """Feature names of the vectoriser, computed once: scikit-learn rebuilds the list on
        every call, which made each explanation cost a quarter of a second."""
        if getattr(self, "_feature_names", None) is None:
            self._feature_names = self.vectorizer.get_feature_names_out()
        return self._feature_names

    def save(self, folder: Path) -> None:
        payload = {"vectorizer": self.vectorizer, "single": self.single, "multi": self.multi}
        joblib.dump(payload, folder / WEIGHTS_FILE, compress=3)

    @classmethod
    def load(
        cls, folder: Path, labels: dict[str, list[str]], calibration: Calibration
    ) -> BaselineClassifier:
        payload = joblib.load(folder / WEIGHTS_FILE)
        return cls(payload["vectorizer"], payload["single"], payload["multi"], labels, calibration)
