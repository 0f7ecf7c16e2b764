"""The model registry: versioned bundles under one folder, and which of them is live.

    root/<version>/      one bundle per version (copied in by `add`, never edited afterwards)
    root/registry.json   {"live": version | None, "history": [{"version", "action", "at"}, ...]}

`promote` makes a version live and `rollback` goes back to the version that was live before it,
so a bad model can be backed out in one step. The live version is worked out by replaying the
history (a promote pushes a version, a rollback pops one), which keeps registry.json the only
state and lets several rollbacks in a row walk further back. Writes are atomic and serialised
with a lock file, so the CLI and the service can share one registry.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from model.atomic import staging_folder
from model.bundle import CALIBRATION, LABELS, MANIFEST, BundleError, read_manifest, write_json
from model.ensemble import serving_summary

__all__ = [
    "KIND_TEXT",
    "ModelEntry",
    "ModelRegistry",
    "RegistryError",
    "UnknownVersionError",
    "describe",
    "headline_metrics",
    "one_line",
]

REGISTRY_FILE = "registry.json"
LOCK_FILE = ".lock"
# A version becomes a folder name: keep it to characters that are safe on every file system.
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class RegistryError(ValueError):
    """A registry operation that cannot be done (bad bundle, clashing version, nothing to roll
    back to)."""


class UnknownVersionError(RegistryError, KeyError):
    """No version of that name in the registry (a KeyError, with a readable message)."""

    def __str__(self) -> str:
        # KeyError would print the message in quotes.
        return str(self.args[0]) if self.args else "unknown version"


@dataclass(frozen=True)
class ModelEntry:
    """One registered bundle.

    Attributes:
        version: folder name under the registry root.
        path: the bundle folder.
        kind: "baseline" or "transformer" (from manifest.json).
        created: when the bundle was trained (manifest "created"), ISO 8601.
        is_live: whether this version is the one the service and `tian` use by default.
        manifest: the bundle's manifest.json.
    """

    version: str
    path: Path
    kind: str
    created: str
    is_live: bool
    manifest: dict[str, Any]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ModelRegistry:
    """Versioned model bundles under `root`, one of them live.

    Example:
        >>> registry = ModelRegistry(Path("var/models"))
        >>> entry = registry.add(Path("runs/demo/baseline"))     # version from the manifest
        >>> registry.promote(entry.version)
        >>> registry.rollback()                                  # back to the previous live one
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # ---------------------------------------------------------------- reading

    def _state(self) -> dict[str, Any]:
        path = self.root / REGISTRY_FILE
        if not path.is_file():
            return {"live": None, "history": []}
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RegistryError(f"{path} is not readable JSON: {exc}") from exc
        if not isinstance(state, dict) or not isinstance(state.get("history", []), list):
            raise RegistryError(f"{path} is not a registry file (expected live and history)")
        state.setdefault("live", None)
        state.setdefault("history", [])
        return state

    def _entry(self, version: str, live: str | None) -> ModelEntry:
        path = self.root / version
        manifest = read_manifest(path)
        return ModelEntry(
            version=version,
            path=path,
            kind=str(manifest.get("kind", "")),
            created=str(manifest.get("created", "")),
            is_live=version == live,
            manifest=manifest,
        )

    def list(self) -> list[ModelEntry]:
        """All registered versions, newest first (by training time, then version)."""
        if not self.root.is_dir():
            return []
        live = self._state()["live"]
        entries = []
        for child in self.root.iterdir():
            if child.name.startswith(".") or not child.is_dir():
                continue  # staging folders and the lock file
            try:
                entries.append(self._entry(child.name, live))
            except BundleError:
                continue  # a stray folder is not a version; `get` reports it by name
        entries.sort(key=lambda e: (e.created, e.version), reverse=True)
        return entries

    def get(self, version: str) -> ModelEntry:
        """The entry for `version`; UnknownVersionError naming the versions there are."""
        _check_version(version)
        if not (self.root / version).is_dir():
            known = [e.version for e in self.list()]
            raise UnknownVersionError(
                f"no model version {version!r} in {self.root}"
                + (f" (versions: {', '.join(known)})" if known else " (the registry is empty)")
            )
        try:
            return self._entry(version, self._state()["live"])
        except BundleError as exc:
            raise RegistryError(f"version {version!r} is not a usable bundle: {exc}") from exc

    def live(self) -> ModelEntry | None:
        """The live version, or None before anything was promoted."""
        live = self._state()["live"]
        return self.get(live) if live else None

    def live_version(self) -> str | None:
        """The live version's name only (reads registry.json, loads no manifest)."""
        live = self._state()["live"]
        return str(live) if live else None

    def rollback_target(self) -> str | None:
        """The version `rollback` would go back to now, or None when there is none."""
        stack = _live_stack(self._state()["history"])
        return stack[-2] if len(stack) >= 2 else None

    def signature(self) -> tuple[int, int] | None:
        """A cheap fingerprint of registry.json (mtime in ns, size): it changes whenever any
        process promotes or rolls back, so a server can poll it on every request."""
        try:
            st = (self.root / REGISTRY_FILE).stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    # ---------------------------------------------------------------- changing

    def add(self, bundle_dir: Path, *, version: str | None = None) -> ModelEntry:
        """Copy a bundle in as a new version (default: the manifest's "version").

        The copy's manifest gains a "registry" section (when it was added, where from, and which
        version was live then) so that lineage survives the copy. Refuses folders that are not
        bundles and versions that already exist; nothing is left behind on failure.
        """
        bundle_dir = Path(bundle_dir)
        try:
            manifest = read_manifest(bundle_dir)
        except BundleError as exc:
            raise RegistryError(str(exc)) from exc
        for name in (LABELS, CALIBRATION):
            if not (bundle_dir / name).is_file():
                raise RegistryError(f"{bundle_dir} is not a complete bundle: {name} is missing")
        # Which kinds exist is the bundle loader's business (new kinds such as the automatic
        # ensemble appear there first); the registry only needs one to be named.
        if not isinstance(manifest.get("kind"), str) or not manifest["kind"]:
            raise RegistryError(f"{bundle_dir}: the manifest names no model kind")
        version = version or str(manifest.get("version") or "")
        if not version:
            raise RegistryError(f"{bundle_dir}: the manifest has no version; pass one explicitly")
        _check_version(version)
        self.root.mkdir(parents=True, exist_ok=True)
        with self._locked():
            target = self.root / version
            if target.exists():
                raise RegistryError(f"version {version!r} already exists in {self.root}")
            # Under the lock and after the check above, the target is new: nothing is replaced.
            with staging_folder(target) as staging:
                shutil.copytree(bundle_dir, staging, dirs_exist_ok=True)
                manifest["registry"] = {
                    "version": version,
                    "added": _now(),
                    "source": str(bundle_dir.resolve()),
                    "live_when_added": self._state()["live"],
                }
                write_json(staging / MANIFEST, manifest)
            self._record(version, "add")
        return self.get(version)

    def promote(self, version: str) -> ModelEntry:
        """Make `version` live; the version live before stays the rollback target."""
        self.get(version)  # unknown or broken versions fail before anything changes
        with self._locked():
            if self._state()["live"] == version:
                raise RegistryError(f"version {version!r} is already live")
            self._record(version, "promote")
        return self.get(version)

    def rollback(self) -> ModelEntry:
        """Go back to the version that was live before the current one."""
        with self._locked():
            stack = _live_stack(self._state()["history"])
            if len(stack) < 2:
                raise RegistryError(
                    "nothing to roll back to: "
                    + ("no version is live" if not stack else f"{stack[-1]!r} is the first live")
                )
            previous = stack[-2]
            if not (self.root / previous).is_dir():
                raise RegistryError(f"cannot roll back: version {previous!r} is no longer there")
            self._record(previous, "rollback")
        return self.get(previous)

    def history(self) -> builtins.list[dict[str, Any]]:
        """Every add, promote and rollback, oldest first."""
        return list(self._state()["history"])

    # ---------------------------------------------------------------- internals

    def _record(self, version: str, action: str) -> None:
        """Append to the history and rewrite registry.json atomically (caller holds the lock)."""
        state = self._state()
        state["history"].append({"version": version, "action": action, "at": _now()})
        stack = _live_stack(state["history"])
        state["live"] = stack[-1] if stack else None
        write_json(self.root / REGISTRY_FILE, state)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive lock on the registry, so two writers never interleave."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCK_FILE, "a+") as handle:
            try:
                import fcntl
            except ImportError:  # Windows: no flock; one writer at a time is then on the user
                yield
                return
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _live_stack(history: list[dict[str, Any]]) -> list[str]:
    """Replay the history: a promote pushes its version, a rollback pops back to its version."""
    stack: list[str] = []
    for event in history:
        action, version = event.get("action"), event.get("version")
        if action == "promote":
            stack.append(str(version))
        elif action == "rollback":
            while stack and stack[-1] != version:
                stack.pop()
            if not stack:
                stack.append(str(version))
    return stack


def _check_version(version: str) -> None:
    if not isinstance(version, str) or not _VERSION.match(version):
        raise RegistryError(
            f"bad version name {version!r}: use letters, digits, '.', '_' or '-' "
            "(at most 100 characters, starting with a letter or digit)"
        )


# ---------------------------------------------------------------------------------- views
# One description of a registered version, shared by `tian models` and the service's models
# page, so that the command line and the page never disagree about what is live or what a
# rollback would do.

KIND_TEXT = {
    "baseline": "基线 TF-IDF",
    "transformer": "Transformer 融合",
    "auto": "自动选择",
    "ensemble": "自动选择",
}
_HEAD_TEXT = {
    "category": "类别",
    "main_unit": "主办单位",
    "co_units": "协办单位",
    "joint": "联合",
    "review": "复核",
}
_METRIC_TEXT = {
    "macro_f1": "宏F1",
    "accuracy": "准确率",
    "micro_f1": "微F1",
    "ece": "ECE",
    "top3": "前三命中",
    "flagged": "需人工比例",
    "unflagged_accuracy": "未标记准确率",
}
# Per head, the figures worth a column: the headline first.
_HEAD_METRICS = {
    "category": ("macro_f1", "accuracy"),
    "main_unit": ("macro_f1", "accuracy"),
    "co_units": ("micro_f1",),
    "review": ("flagged", "unflagged_accuracy"),
}


def headline_metrics(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The training run's headline figures from a manifest's "metrics", for people.

    Accepts the per-head layout (``{"category": {"macro_f1": ...}, ...}``, optionally under
    ``"heads"``) and a flat one (``{"macro_f1": ...}``). Returns ``[{"head", "metric",
    "value", "text"}]`` (text in Chinese, e.g. "类别 宏F1 0.912"); empty when the bundle
    recorded no metrics, which pages show as 未记录.
    """
    metrics = manifest.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        return []
    nested = metrics.get("heads")
    heads: dict[str, Any] = nested if isinstance(nested, dict) else metrics
    out: list[dict[str, Any]] = []

    def add(head: str | None, name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return
        label = _METRIC_TEXT.get(name, name)
        prefix = f"{_HEAD_TEXT.get(head, head)} " if head else ""
        out.append(
            {
                "head": head,
                "metric": name,
                "value": float(value),
                "text": f"{prefix}{label} {value:.3f}",
            }
        )

    per_head = {h: v for h, v in heads.items() if isinstance(v, dict)}
    if per_head:
        for head in [h for h in _HEAD_METRICS if h in per_head] + [
            h for h in per_head if h not in _HEAD_METRICS
        ]:
            figures = per_head[head]
            for name in _HEAD_METRICS.get(head, ("macro_f1", "accuracy")):
                if name in figures:
                    add(head, name, figures[name])
    else:
        for name in ("macro_f1", "accuracy", "micro_f1", "ece"):
            if name in heads:
                add(None, name, heads[name])
    return out


def describe(entry: ModelEntry, rollback_target: str | None = None) -> dict[str, Any]:
    """What a person needs to pick a version (no label lists), JSON-ready."""
    m = entry.manifest
    data = m.get("training_data") or {}
    return {
        "version": entry.version,
        "live": entry.is_live,
        "rollback_target": entry.version == rollback_target,
        "kind": entry.kind,
        "kind_text": KIND_TEXT.get(entry.kind, entry.kind),
        "created": entry.created,
        "path": str(entry.path),
        "base_model": m.get("base_model"),
        "training_rows": data.get("rows"),
        "training_years": sorted(str(y) for y in (data.get("years") or {})),
        "training_files": data.get("files"),
        "aliases": m.get("aliases"),
        "metrics": m.get("metrics"),
        "headline": headline_metrics(m),
        "registry": m.get("registry"),
        "serving": serving_summary(m),  # auto bundles: which members serve which head, why
    }


def one_line(entry: ModelEntry) -> str:
    """One line about a version: name, kind, live, training rows and years, headline figures."""
    d = describe(entry)
    years = ",".join(d["training_years"]) or "-"
    data = (
        f"{d['training_rows']} rows, years {years}"
        if d["training_rows"] is not None
        else "training data not recorded"
    )
    figures = "; ".join(
        f"{h['head'] or ''} {h['metric']} {h['value']:.3f}".strip() for h in d["headline"][:4]
    )
    return (
        f"{entry.version} ({entry.kind}{', live' if entry.is_live else ''}): "
        f"{data}; metrics: {figures or 'not recorded'}"
    )
