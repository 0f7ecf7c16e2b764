"""A saved model is one folder that explains itself (a bundle).

    manifest.json     kind, version, base model, settings, training data summary, metrics
    labels.json       label list per head, in the order of the model's outputs
    calibration.json  temperatures and conformal thresholds per head
    ...               the kind's own weights (baseline.joblib, a transformer's files, or
                      for kind "auto" ensemble.json and one folder per member)

The service and the CLI never hard-code a label list: they read it from here.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from model.atomic import atomic_write_json, staging_folder
from model.calibration import Calibration

MANIFEST = "manifest.json"
LABELS = "labels.json"
CALIBRATION = "calibration.json"
FORMAT_VERSION = 1


class Classifier(Protocol):
    """What every classifier kind offers to prediction, evaluation and the service."""

    kind: str
    labels: dict[str, list[str]]
    calibration: Calibration

    @property
    def heads(self) -> list[str]: ...

    def predict_proba(
        self, texts: list[str], *, progress: bool = False
    ) -> dict[str, np.ndarray]: ...

    def save(self, folder: Path) -> None: ...


class BundleError(ValueError):
    """A folder that is not a usable model bundle."""


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (numpy values as plain numbers); see :mod:`model.atomic`."""
    atomic_write_json(path, data, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def save_bundle(classifier: Classifier, out: Path, manifest: dict[str, Any]) -> Path:
    """Save a classifier and its manifest into `out`; an existing bundle there is replaced only
    once the new one is completely written, so a failed save never leaves a broken model."""
    out = Path(out)
    with staging_folder(out) as staging:
        classifier.save(staging)
        write_json(staging / LABELS, classifier.labels)
        write_json(staging / CALIBRATION, classifier.calibration.to_dict())
        full = {
            "format_version": FORMAT_VERSION,
            "kind": classifier.kind,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            **manifest,
        }
        write_json(staging / MANIFEST, full)
    return out


def read_manifest(folder: Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise BundleError(f"{folder} is not a model bundle: {MANIFEST} is missing")
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path} is not valid JSON: {exc}") from exc
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{path}: bundle format {manifest.get('format_version')!r} is not supported "
            f"(this tian reads format {FORMAT_VERSION})"
        )
    return manifest


def load_classifier(folder: str | Path) -> Classifier:
    """Load the classifier in a bundle folder, whatever its kind."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    try:
        labels = json.loads((folder / LABELS).read_text(encoding="utf-8"))
        calibration = Calibration.from_dict(
            json.loads((folder / CALIBRATION).read_text(encoding="utf-8"))
        )
    except (OSError, json.JSONDecodeError) as exc:
        raise BundleError(f"{folder}: cannot read labels or calibration: {exc}") from exc
    kind = manifest.get("kind")
    if kind == "baseline":
        from model.baseline import BaselineClassifier

        return BaselineClassifier.load(folder, labels, calibration)
    if kind == "transformer":
        from model.transformer import TransformerClassifier

        return TransformerClassifier.load(folder, labels, calibration)
    if kind == "auto":
        from model.ensemble import EnsembleClassifier

        return EnsembleClassifier.load(folder, labels, calibration)
    raise BundleError(f"{folder}: unknown model kind {kind!r}")
