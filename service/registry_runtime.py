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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # types only: loading them at import would pull in the model stack
    from model.bundle import Classifier

log = logging.getLogger("tian.service.models")


class ModelUnavailable(RuntimeError):
    """No model is loaded, or the registry cannot do what was asked.

    ``str(exc)`` is the Chinese sentence pages show; ``code`` is a short English machine code
    for the API and logs.
    """

    def __init__(self, message: str, code: str = "model_unavailable") -> None:
        super().__init__(message)
        self.code = code


class UnknownModel(ModelUnavailable):
    """The registry has no such version."""

    def __init__(self, message: str, code: str = "unknown_version") -> None:
        super().__init__(message, code)


@dataclass(frozen=True)
class LiveModel:
    """A loaded bundle: the classifier and what the pages need to show about it."""

    version: str
    kind: str
    path: Path
    manifest: dict[str, Any]
    classifier: Classifier
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


NO_MODEL = "尚未部署模型：系统不提供分类和承办单位建议。"


class ModelRuntime:
    """The service's view of the model registry plus the loaded live model."""

    def __init__(self, registry_root: Path, fallback_dir: Path | None = None) -> None:
        self.registry_root = Path(registry_root)
        self.fallback_dir = fallback_dir
        self._current: LiveModel | None = None
        self._previous: LiveModel | None = None
        self._lock = threading.Lock()
        self._seen: tuple[int, int] | None = None
        self._failed: tuple[tuple[int, int] | None, str] | None = None
        self.notice: str | None = None

    # -- reading --------------------------------------------------------------------------

    @property
    def current(self) -> LiveModel | None:
        """The live model (one atomic reference read), or None; follows the registry."""
        self.sync()
        return self._current

    @property
    def previous(self) -> LiveModel | None:
        """The model that was loaded before the current one (kept for a quick rollback)."""
        return self._previous

    def registry(self) -> Any:
        """The on-disk registry (``model.registry.ModelRegistry``)."""
        from model.registry import ModelRegistry

        self.registry_root.mkdir(parents=True, exist_ok=True)
        return ModelRegistry(self.registry_root)

    def rollback_target(self) -> str | None:
        """The version a rollback goes back to, as the registry says (never a guess from what
        happens to be in memory)."""
        try:
            return self.registry().rollback_target()
        except Exception:
            log.exception("model registry unreadable")
            return None

    def list(self) -> list[dict[str, Any]]:
        """Registry entries, newest first, as JSON-ready dicts (``model.registry.describe``)."""
        from model.registry import RegistryError, describe

        live = self._current.version if self._current else None
        try:
            registry = self.registry()
            target = registry.rollback_target()
            entries = registry.list()
        except RegistryError as exc:
            log.error("model registry unreadable: %s", exc)
            raise ModelUnavailable(
                "模型库无法读取（详见服务日志）。", "registry_unreadable"
            ) from exc
        return [
            describe(e, target) | {"is_live": e.is_live, "loaded": e.version == live}
            for e in entries
        ]

    # -- following the registry -------------------------------------------------------------

    def sync(self, *, wait: bool = False) -> None:
        """Load the registry's live version if it changed since the last look.

        Costs one ``stat`` when nothing changed. Without ``wait``, a request that finds another
        thread already loading keeps the model it has (never blocks behind a load).
        """
        try:
            registry = self.registry()
            signature = registry.signature()
        except Exception:
            return
        if signature == self._seen:
            return
        if not self._lock.acquire(blocking=wait):
            return
        try:
            self._sync_locked(registry, signature)
        finally:
            self._lock.release()

    def _sync_locked(self, registry: Any, signature: tuple[int, int] | None) -> None:
        if signature == self._seen:
            return  # another thread did it while we waited for the lock
        try:
            version = registry.live_version()
        except Exception as exc:
            log.error("model registry unreadable: %s", exc)
            self._seen = signature
            return
        loaded = self._current.version if self._current else None
        if version is None or version == loaded:
            self._seen = signature
            return
        try:
            entry = registry.get(version)
            if self._previous is not None and self._previous.version == version:
                new = self._previous
            else:
                new = load_live(entry.path, entry.version, self._find_explainer(entry))
        except Exception as exc:
            log.error("registered live model %s could not be loaded: %s", version, exc)
            self.notice = (
                f"模型库登记的当前模型 {version} 无法加载，仍在使用 {loaded or '（无）'}。"
            )
            self._seen = signature
            return
        self._swap(new)
        self._seen = signature
        log.info("the registry names %s live: now serving it (was %s)", version, loaded)

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
            self.notice = "模型加载失败（详见服务日志），系统暂不提供分类和承办单位建议。"
            return
        finally:
            try:
                self._seen = self.registry().signature()
            except Exception:
                self._seen = None
        if self._current is None:
            self.notice = NO_MODEL
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
        """A bundle without words of its own borrows the newest baseline bundle's words."""
        if entry.kind in ("baseline", "auto"):  # both explain with their own words
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

    def _load(self, entry: Any) -> LiveModel:
        if self._previous is not None and self._previous.version == entry.version:
            return self._previous
        try:
            return load_live(entry.path, entry.version, self._find_explainer(entry))
        except Exception as exc:
            log.error("model %s could not be loaded: %s", entry.version, exc)
            raise ModelUnavailable(
                f"模型 {entry.version} 无法加载（详见服务日志）。", "load_failed"
            ) from exc

    def promote(self, version: str) -> LiveModel:
        """Load ``version`` fully, mark it live in the registry, then swap it in.

        When the registry already names ``version`` live (promoted from the command line) but
        this service still serves another, it just loads and serves it: no error.
        """
        from model.registry import RegistryError, UnknownVersionError

        with self._lock:
            registry = self.registry()
            try:
                entry = registry.get(version)
            except UnknownVersionError as exc:
                raise UnknownModel(f"无法启用 {version}：模型库中没有这个版本。") from exc
            except RegistryError as exc:
                log.error("cannot promote %s: %s", version, exc)
                raise ModelUnavailable(
                    f"版本 {version} 不是可用的模型包（详见服务日志）。", "bad_bundle"
                ) from exc
            registered = registry.live_version()
            serving = self._current
            if serving is not None and serving.version == version and registered == version:
                raise ModelUnavailable(f"模型 {version} 已在使用中。", "already_live")
            loaded = (
                serving if serving is not None and serving.version == version else self._load(entry)
            )
            if registered != version:
                try:
                    registry.promote(version)
                except RegistryError as exc:
                    log.error("cannot promote %s: %s", version, exc)
                    raise ModelUnavailable(f"无法启用 {version}（详见服务日志）。") from exc
            self._swap(loaded)
            self._seen = registry.signature()
            log.info("promoted model %s", version)
            return loaded

    def rollback(self) -> LiveModel:
        """Go back to the version the registry names as the previous live one."""
        from model.registry import RegistryError

        with self._lock:
            registry = self.registry()
            target = registry.rollback_target()
            if target is None:
                raise ModelUnavailable("没有可回滚的上一个模型。", "nothing_to_roll_back")
            try:
                entry = registry.get(target)
            except RegistryError as exc:
                raise ModelUnavailable(
                    f"无法回滚：上一个模型 {target} 已不在模型库中。", "rollback_target_missing"
                ) from exc
            loaded = self._load(entry)  # load first: a failed load leaves the registry alone
            try:
                entry = registry.rollback()
            except RegistryError as exc:
                log.error("rollback failed: %s", exc)
                raise ModelUnavailable("无法回滚（详见服务日志）。", "rollback_failed") from exc
            if entry.version != loaded.version:  # someone else changed the registry meanwhile
                loaded = self._load(entry)
            self._swap(loaded)
            self._seen = registry.signature()
            log.info("rolled back to model %s", entry.version)
            return loaded

    def use(self, live: LiveModel | None) -> None:
        """Set the live model directly (tests, or a model given on the command line)."""
        with self._lock:
            try:
                self._seen = self.registry().signature()
            except Exception:
                self._seen = None
            if live is None:
                self._current = None
                self.notice = NO_MODEL
            else:
                self._swap(live)
