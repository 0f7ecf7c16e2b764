"""The live model held in memory, with promotion and rollback that never fail a request.

A request takes one reference to the current :class:`LiveModel` and uses it to the end.
Promotion loads the new bundle completely first, then swaps the reference under a lock, so a
request sees either the old model or the new one, never a half-loaded one. The model that was
live before stays loaded for an instant rollback.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("tian.service.models")


class ModelUnavailable(RuntimeError):
    """No model is loaded, or the registry cannot do what was asked."""


class UnknownModel(ModelUnavailable):
    """The registry has no such version."""


@dataclass(frozen=True)
class LiveModel:
    """A loaded bundle: the classifier and what the pages need to show about it."""

    version: str
    kind: str
    path: Path
    manifest: dict[str, Any]
    classifier: Any
    explainer: Any | None = field(default=None, repr=False)

    def explain(self, text: str, head: str, label: str, top_n: int = 8) -> list[tuple[str, float]]:
        """Words that drove a suggestion; empty when no model here can explain."""
        if self.explainer is None:
            return []
        try:
            return list(self.explainer.explain(text, head, label, top_n))
        except Exception:  # an explanation is a nicety: never fail a page for it
            log.exception("explain failed for model %s", self.version)
            return []


def load_live(path: Path, version: str | None = None, explainer: Any | None = None) -> LiveModel:
    """Load a bundle folder fully (weights, labels, calibration)."""
    from model.bundle import load_classifier, read_manifest

    manifest = read_manifest(path)
    classifier = load_classifier(path)
    if explainer is None and hasattr(classifier, "explain"):
        explainer = classifier
    return LiveModel(
        version=version or str(manifest.get("version") or path.name),
        kind=str(manifest.get("kind", "")),
        path=path,
        manifest=manifest,
        classifier=classifier,
        explainer=explainer,
    )


class ModelRuntime:
    """The service's view of the model registry plus the loaded live model."""

    def __init__(self, registry_root: Path, fallback_dir: Path | None = None) -> None:
        self.registry_root = Path(registry_root)
        self.fallback_dir = fallback_dir
        self._current: LiveModel | None = None
        self._previous: LiveModel | None = None
        self._lock = threading.Lock()
        self.notice: str | None = None

    # -- reading --------------------------------------------------------------------------

    @property
    def current(self) -> LiveModel | None:
        """The live model (one atomic reference read), or None."""
        return self._current

    @property
    def previous(self) -> LiveModel | None:
        return self._previous

    def registry(self) -> Any:
        """The on-disk registry (``model.registry.ModelRegistry``)."""
        try:
            from model.registry import ModelRegistry
        except ImportError as exc:  # pragma: no cover - until the registry module exists
            raise ModelUnavailable("the model registry is not available in this build") from exc
        self.registry_root.mkdir(parents=True, exist_ok=True)
        return ModelRegistry(self.registry_root)

    def list(self) -> list[dict[str, Any]]:
        """Registry entries, newest first, as JSON-ready dicts."""
        live = self._current.version if self._current else None
        out = []
        for e in self.registry().list():
            out.append(
                {
                    "version": e.version,
                    "kind": e.kind,
                    "created": e.created,
                    "is_live": e.is_live,
                    "loaded": e.version == live,
                    "metrics": e.manifest.get("metrics", {}),
                }
            )
        return out

    # -- loading and swapping ------------------------------------------------------------

    def start(self) -> None:
        """Load the registry's live model, else ``fallback_dir``; with neither, run without."""
        try:
            entry = self.registry().live()
        except Exception as exc:
            log.warning("model registry unreadable (%s); trying the fallback model", exc)
            entry = None
        if entry is None and self.fallback_dir is not None:
            entry = self._register_fallback(Path(self.fallback_dir))
        try:
            if entry is not None:
                self._current = load_live(entry.path, entry.version, self._find_explainer(entry))
            elif self.fallback_dir is not None:
                self._current = load_live(Path(self.fallback_dir))
        except Exception as exc:
            log.error("the model could not be loaded: %s", exc)
            self.notice = f"模型加载失败：{exc}"
            return
        if self._current is None:
            self.notice = "尚未部署模型：系统不提供分类和承办单位建议。"
        else:
            self.notice = None
            log.info("live model %s (%s)", self._current.version, self._current.kind)

    def _register_fallback(self, folder: Path) -> Any | None:
        """Add the ``--model`` bundle to the registry and make it live, so that later
        promotions have something to roll back to. None when that is not possible."""
        try:
            from model.bundle import read_manifest

            registry = self.registry()
            version = str(read_manifest(folder).get("version") or folder.name)
            known = {e.version for e in registry.list()}
            if version not in known:
                registry.add(folder, version=version)
            return registry.promote(version)
        except Exception as exc:
            log.warning("serving %s without registering it: %s", folder, exc)
            return None

    def _find_explainer(self, entry: Any) -> Any | None:
        """The transformer cannot explain yet: borrow the newest baseline bundle's words."""
        if entry.kind == "baseline":
            return None  # load_live uses the classifier itself
        try:
            for other in self.registry().list():
                if other.kind == "baseline":
                    from model.bundle import load_classifier

                    return load_classifier(other.path)
        except Exception:
            log.warning("no baseline bundle could be loaded to explain suggestions")
        return None

    def _swap(self, new: LiveModel) -> None:
        old = self._current
        self._current = new  # a single reference assignment: atomic for readers
        if old is not None and old.version != new.version:
            self._previous = old
        self.notice = None

    def promote(self, version: str) -> LiveModel:
        """Load ``version`` fully, mark it live in the registry, then swap it in."""
        with self._lock:
            registry = self.registry()
            try:
                entry = registry.get(version)
            except KeyError as exc:
                raise UnknownModel(f"unknown model version {version!r}") from exc
            except ValueError as exc:
                raise ModelUnavailable(str(exc)) from exc
            if self._current is not None and self._current.version == version:
                raise ModelUnavailable(f"model {version!r} is already live")
            loaded = load_live(entry.path, entry.version, self._find_explainer(entry))
            try:
                registry.promote(version)
            except ValueError as exc:
                raise ModelUnavailable(str(exc)) from exc
            self._swap(loaded)
            log.info("promoted model %s", version)
            return loaded

    def rollback(self) -> LiveModel:
        """Go back to the previously live version (kept loaded when possible)."""
        with self._lock:
            registry = self.registry()
            try:
                entry = registry.rollback()
            except (KeyError, ValueError, RuntimeError) as exc:
                raise ModelUnavailable(f"nothing to roll back to: {exc}") from exc
            if self._previous is not None and self._previous.version == entry.version:
                loaded = self._previous
            else:
                loaded = load_live(entry.path, entry.version, self._find_explainer(entry))
            self._swap(loaded)
            log.info("rolled back to model %s", entry.version)
            return loaded

    def use(self, live: LiveModel | None) -> None:
        """Set the live model directly (tests, or a model given on the command line)."""
        with self._lock:
            if live is None:
                self._current = None
                self.notice = "尚未部署模型：系统不提供分类和承办单位建议。"
            else:
                self._swap(live)
