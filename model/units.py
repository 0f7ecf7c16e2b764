"""The unit directory: the office's list of handling units with their duties (三定方案 summaries).

A city has 60 or so handling units (承办单位), many with only a few past proposals. The directory
is one CSV the office keeps::

    name,aliases,level,duties,active,successor
    市教育局,教育局|市教委,市级,负责全市各级各类教育的统筹规划……,1,
    市乡村振兴局,市扶贫办,市级,（已并入市农业农村局）……,0,市农业农村局

It serves three purposes:

* the list of current units: a unit marked inactive (merged, abolished) is never suggested;
  `successor` names the unit that took its work over, where there is one;
* help text on the review page (:meth:`UnitDirectory.duties`);
* a prior (:meth:`UnitDirectory.prior`) that matches a proposal to each unit's duties, so that a
  unit with few or no past proposals can still be suggested.

The prior is a TF-IDF cosine between the proposal and each unit's name, aliases and duties
(character 1–2-grams, IDF over the directory's own entries, so a term that only one or two
units' duties use weighs most), turned into a distribution by a softmax with a
temperature. Chinese headers are accepted (名称, 别名, 层级, 职责, 有效, 并入单位).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model.char_tfidf import CharTfidf
from model.text import normalize_label, normalize_text

__all__ = ["DEFAULT_UNITS", "Unit", "UnitDirectory", "UnitDirectoryError", "blend_with_prior"]

DEFAULT_UNITS = Path(__file__).resolve().parent.parent / "data" / "units.csv"

_HEADERS: dict[str, tuple[str, ...]] = {
    "name": ("name", "名称", "单位名称", "单位"),
    "aliases": ("aliases", "别名", "简称", "曾用名"),
    "level": ("level", "层级", "级别"),
    "duties": ("duties", "职责", "主要职责", "职能"),
    "active": ("active", "有效", "是否有效", "状态"),
    "successor": ("successor", "并入单位", "继任单位", "merged_into"),
}
_REQUIRED = ("name", "duties")
_TRUE = {"", "1", "true", "yes", "y", "是", "有效", "现行", "在用"}
_FALSE = {"0", "false", "no", "n", "否", "无效", "撤销", "已撤销", "已合并", "停用"}
_ALIAS_SPLIT = str.maketrans({"|": "、", "｜": "、", ";": "、", "；": "、"})

#: Softmax temperature of the prior over cosine scores: the least log-loss of the prior alone on
#: the Teddy replies (0.035; benchmarks/units_directory.py). Lower is sharper.
DEFAULT_TEMPERATURE = 0.035
#: Share given to each unit that the directory does not list, or lists as inactive.
DEFAULT_FLOOR = 1e-4


class UnitDirectoryError(ValueError):
    """A bad directory file; the message names the file, the row and the column."""


@dataclass(frozen=True)
class Unit:
    """One handling unit: its official name, other names, level, duties and whether it exists."""

    name: str
    aliases: tuple[str, ...]
    level: str
    duties: str
    active: bool = True
    successor: str | None = None


def _doc_analyzer() -> CharTfidf:
    """Character 1–2-grams, sublinear TF-IDF. On the Teddy replies this matched better than
    jieba words or words plus characters (prior top-3 0.748 against 0.713 and 0.731,
    benchmarks/units_directory.py): duties are terse lists of matters, and citizens name the
    same matters in other word forms (物业费 / 物业服务收费) that characters still share."""
    return CharTfidf((1, 2), max_chars=4000)


class UnitDirectory:
    """The units of one office, by official name, with alias lookup and a duties-text prior."""

    def __init__(
        self, units: Sequence[Unit], *, source: str = "", temperature: float = DEFAULT_TEMPERATURE
    ) -> None:
        if temperature <= 0:
            raise ValueError("temperature must be positive")
        self.units: dict[str, Unit] = {u.name: u for u in units}
        if len(self.units) != len(units):
            raise UnitDirectoryError("two units share one name")
        self.source = source
        self.temperature = temperature
        self._lookup: dict[str, str] = {}
        for unit in units:
            for alias in (unit.name, *unit.aliases):
                key = normalize_label(alias)
                owner = self._lookup.setdefault(key, unit.name)
                if owner != unit.name:
                    raise UnitDirectoryError(f"{alias} names both {owner} and {unit.name}")
        self._vectorizer: Any = None
        self._docs: Any = None
        self._doc_names: list[str] = []

    # ------------------------------------------------------------------ reading
    @classmethod
    def load(cls, path: Path | str | None = None, **kwargs: Any) -> UnitDirectory:
        """Read a directory CSV (default: the shipped `data/units.csv`), UTF-8 or GB18030.

        Aliases are separated by 、 or | (also ；). `active` takes 1/0, true/false, 是/否, 有效/撤销
        (empty means active). Every problem in the file is collected into one error that names
        the row and the column; nothing is half-read.
        """
        path = Path(path) if path is not None else DEFAULT_UNITS
        try:
            raw = path.read_bytes()
        except FileNotFoundError as exc:
            raise UnitDirectoryError(f"{path}: unit directory not found") from exc
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            try:
                text = raw.decode("gb18030")
            except UnicodeDecodeError as exc:
                raise UnitDirectoryError(f"{path}: neither UTF-8 nor GB18030 text") from exc
        units = _parse(text, str(path))
        return cls(units, source=str(path), **kwargs)

    # ------------------------------------------------------------------ lookup
    def names(self, *, include_inactive: bool = False) -> list[str]:
        """Official names in file order: the current units, or all with `include_inactive`."""
        return [u.name for u in self.units.values() if include_inactive or u.active]

    def canonical(self, name: str) -> str | None:
        """The official name for `name` or one of its aliases; None for a name not listed."""
        return self._lookup.get(normalize_label(name))

    def get(self, name: str) -> Unit | None:
        """The unit that `name` (official name or alias) refers to."""
        official = self.canonical(name)
        return self.units[official] if official else None

    def is_current(self, name: str) -> bool:
        """True when `name` (or its alias) is a listed unit that exists today."""
        unit = self.get(name)
        return unit is not None and unit.active

    def current(self, name: str) -> str | None:
        """The current unit doing `name`'s work: itself when active, else its successor chain."""
        seen: set[str] = set()
        unit = self.get(name)
        while unit is not None and not unit.active and unit.successor and unit.name not in seen:
            seen.add(unit.name)
            unit = self.get(unit.successor)
        return unit.name if unit is not None and unit.active else None

    def duties(self, name: str) -> str | None:
        """One paragraph on what the unit does, for the review page; None when not listed."""
        unit = self.get(name)
        return unit.duties if unit else None

    def level(self, name: str) -> str | None:
        """The unit's level (市级, 区县级, …) as written in the file; None when not listed."""
        unit = self.get(name)
        return unit.level if unit else None

    # ------------------------------------------------------------------ prior
    def _fit(self) -> None:
        active = [u for u in self.units.values() if u.active]
        if not active:
            raise UnitDirectoryError(f"{self.source or 'unit directory'}: no active unit")
        # The name and aliases are part of the document: a proposal that names the bureau
        # (建议市教育局牵头……) is the strongest evidence there is.
        docs = [" ".join([u.name, *u.aliases, u.duties]) for u in active]
        self._vectorizer = _doc_analyzer()
        self._docs = self._vectorizer.fit_transform(docs)
        self._doc_names = [u.name for u in active]

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Cosine of each text with each active unit's entry, columns in :meth:`names` order."""
        if self._vectorizer is None:
            self._fit()
        x = self._vectorizer.transform(list(texts))
        return np.asarray((x @ self._docs.T).todense(), dtype=np.float64)

    def prior(
        self,
        texts: Sequence[str],
        units: Sequence[str],
        *,
        temperature: float | None = None,
        floor: float = DEFAULT_FLOOR,
    ) -> np.ndarray:
        """(n, len(units)) probability-like match of each text to each unit's duties.

        Each row sums to 1. Units not in the directory, or inactive there, get `floor` each
        (never exactly zero, so a blend can still rank them; in practice never suggested);
        the units listed as current share the rest by a softmax of their duties cosine.
        `units` may use aliases; a unit with no past proposals is scored like any other.
        """
        t = temperature or self.temperature
        if not texts:
            return np.zeros((0, len(units)))
        cos = self.scores(texts)
        col = {name: j for j, name in enumerate(self._doc_names)}
        index = [col.get(self.canonical(u) or "", -1) for u in units]
        present = np.array([j >= 0 for j in index], dtype=bool)
        out = np.full((len(texts), len(units)), floor, dtype=np.float64)
        if present.any():
            z = cos[:, [j for j in index if j >= 0]] / t
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            share = max(1.0 - floor * (~present).sum(), floor)
            out[:, present] = p * share
        return out / out.sum(axis=1, keepdims=True)

    def to_manifest(self) -> dict[str, Any]:
        """A short record for a bundle's manifest."""
        return {
            "file": self.source,
            "units": len(self.units),
            "active": len(self.names()),
            "temperature": self.temperature,
        }


def blend_with_prior(
    probs: np.ndarray,
    prior: np.ndarray,
    train_counts: Sequence[int] | np.ndarray,
    weight: float,
    *,
    kappa: float = 0.0,
) -> np.ndarray:
    """Blend a classifier's unit probabilities with the directory prior, backing off per unit.

    A classifier can only rank units it has seen: a unit with no training rows gets (almost)
    nothing from it, however well the proposal matches the unit's duties. So each unit's
    classifier share is first replaced, in proportion to how little the classifier knows it,
    by the prior: ``q(u) = t_u * probs(u) + (1 - t_u) * prior(u)`` with the trust
    ``t_u = n_u / (n_u + kappa)`` (``kappa = 0``: trust every unit with at least one row fully,
    none without), renormalised; the result is the linear pool ``(1 - weight) * q +
    weight * prior``. With every unit seen and ``kappa = 0`` it is the plain linear pool.

    ``weight = 0`` applies the back-off alone, after any other blend (for example the `auto`
    ensemble's log-linear one, which fills an unseen unit with the median "no opinion" score):
    on the Teddy replies, leaving each unit out of training, that lifted the share of a unit's
    rows reaching top-3 from 0.33 to 0.69 (benchmarks/units_directory.py, docs/unit_directory.md).

    Args:
        probs: (n, units) classifier probabilities, 0 in the columns of units it never saw.
        prior: (n, units) :meth:`UnitDirectory.prior` for the same columns.
        train_counts: training rows per unit (same column order).
        weight: the prior's share in the pool (fit it by log-loss on held-out rows).
        kappa: rows at which a unit's classifier share is trusted half.

    Returns: (n, units) probabilities, rows summing to 1.
    """
    probs = np.asarray(probs, dtype=np.float64)
    prior = np.asarray(prior, dtype=np.float64)
    counts = np.asarray(train_counts, dtype=np.float64)
    if probs.shape != prior.shape or counts.shape != (probs.shape[1],):
        raise ValueError(
            f"shapes differ: probs {probs.shape}, prior {prior.shape}, counts {counts.shape}"
        )
    if not 0.0 <= weight <= 1.0:
        raise ValueError("weight must lie between 0 and 1")
    trust = counts / (counts + kappa) if kappa > 0 else (counts > 0).astype(np.float64)
    q = trust[None, :] * probs + (1.0 - trust[None, :]) * prior
    q /= np.maximum(q.sum(axis=1, keepdims=True), 1e-12)
    return (1.0 - weight) * q + weight * prior


def _parse(text: str, where: str) -> list[Unit]:
    reader = csv.reader(io.StringIO(text))
    header = [normalize_label(h).lower() for h in next(reader, [])]
    cols: dict[str, int] = {}
    for key, accepted in _HEADERS.items():
        for i, h in enumerate(header):
            if h in accepted:
                cols[key] = i
    missing = [k for k in _REQUIRED if k not in cols]
    if missing:
        raise UnitDirectoryError(
            f"{where}: missing column(s) {', '.join(missing)} (header: {','.join(header)})"
        )
    problems: list[str] = []
    units: list[Unit] = []
    seen: dict[str, int] = {}
    for row_no, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        cell = {k: (row[i].strip() if i < len(row) else "") for k, i in cols.items()}
        name = normalize_label(cell["name"])
        duties = normalize_text(cell["duties"])
        at = f"{where}, row {row_no}"
        if not name:
            problems.append(f"{at}, column name: empty unit name")
            continue
        if name in seen:
            problems.append(f"{at}, column name: {name} is already listed on row {seen[name]}")
            continue
        seen[name] = row_no
        if not duties:
            problems.append(f"{at}, column duties: {name} has no duties text")
        flag = cell.get("active", "").lower()
        if flag not in _TRUE | _FALSE:
            problems.append(
                f"{at}, column active: {cell['active']!r} is not 1/0, 是/否 or true/false"
            )
        aliases = tuple(
            a
            for a in dict.fromkeys(
                normalize_label(x)
                for x in cell.get("aliases", "").translate(_ALIAS_SPLIT).split("、")
            )
            if a and a != name
        )
        successor = normalize_label(cell.get("successor", "")) or None
        units.append(
            Unit(name, aliases, cell.get("level", ""), duties, flag not in _FALSE, successor)
        )
    names = {u.name for u in units}
    owners: dict[str, str] = {}
    for unit in units:
        for alias in unit.aliases:
            if alias in names:
                problems.append(
                    f"{where}, {unit.name}, column aliases: {alias} is itself a listed unit"
                )
            elif owners.setdefault(alias, unit.name) != unit.name:
                problems.append(
                    f"{where}, {unit.name}, column aliases: {alias} is also an alias of {owners[alias]}"
                )
        if unit.successor and unit.successor not in names:
            problems.append(
                f"{where}, row {seen[unit.name]}, column successor: {unit.successor} is not a listed unit"
            )
    if not units and not problems:
        problems.append(f"{where}: no units listed")
    if problems:
        raise UnitDirectoryError("\n".join(problems))
    return units
