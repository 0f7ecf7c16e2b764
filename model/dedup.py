"""Duplicate scoring: pair features and a calibrated "same matter" probability.

Each signal covers what the others miss:

- a normalised-text hash catches exact repeats;
- character 3-gram Jaccard and containment catch near-verbatim copies (a changed opening,
  a sentence added or removed);
- embedding cosine catches rewordings. e5 cosines sit in a narrow high band (unrelated
  Chinese texts score about 0.9), so besides the raw cosine we use the cosine *relative to
  each text's own neighbourhood* (cosine minus the mean of both texts' top-k neighbour
  cosines), which transfers better between corpora of different density;
- "differences that matter": places, estates, schools or units named in one text and not
  the other, and numbers (years, house numbers) that disagree;
- "same concrete matter": proposals on one theme (a river, a district) share their theme
  words but not the specific terms of their matter (淤地坝 and 坡耕地 against 堤防 and
  管涌). Overlap weighted by each 3-gram's rarity in the pool (IDF over the texts being
  compared) rewards the shared rare terms and discounts the theme words, in the full text
  and in the title.

A logistic regression over these features, fitted by `training/dedup_calibration.py` and
shipped as `model/dedup_calibration.json`, turns them into a probability.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = [
    "FEATURE_NAMES",
    "DedupCalibration",
    "DedupPool",
    "DocSignature",
    "DuplicateScorer",
    "PairKind",
    "clean_for_overlap",
    "neighbour_background",
    "pair_features",
    "rarity_weights",
    "signature",
]

PairKind = Literal["exact", "near", "semantic"]

FEATURE_NAMES: tuple[str, ...] = (
    "exact",
    "char_jaccard",
    "char_containment",
    "title_overlap",
    "cosine",
    "cosine_rel",
    "entity_mismatch",
    "number_mismatch",
    "length_ratio",
    "rare_jaccard",
    "rare_containment",
    "title_rare",
)

DEFAULT_CALIBRATION_PATH = Path(__file__).with_name("dedup_calibration.json")
SHINGLE_SIZE = 3

# Anonymisation masks (runs of '*') and punctuation inflate or break character overlap.
_MASK_RE = re.compile(r"\*+")
# A named place, estate, institution or road: two characters before a typical suffix. Two
# characters (not a variable span) so that the same name gives the same key in both texts
# regardless of the words before it.
_ENTITY_RE = re.compile(
    r"(?=([\u4e00-\u9fffA-Za-z0-9]{2}"
    r"(?:小区|社区|街道|新村|花园|家园|公寓|大厦|广场|医院|卫生院|小学|中学|幼儿园|大学|学院|学校"
    r"|公司|市场|公园|大桥|水库|区|县|镇|乡|村|路|街|巷|河|湖|江|山|桥|站|苑|园)))"
)
# Generic words that end in an entity suffix but name nothing in particular.
_GENERIC_PREFIXES = frozenset(
    [
        "我们",
        "你们",
        "他们",
        "这个",
        "那个",
        "所在",
        "附近",
        "周边",
        "整个",
        "全市",
        "各个",
        "本市",
        "该市",
        "城市",
        "农村",
        "社区",
        "地区",
        "辖区",
        "园区",
        "景区",
        "城区",
        "市区",
        "郊区",
        "片区",
        "小区",
        "校园",
        "公园",
        "乡村",
        "山村",
        "道路",
        "马路",
        "公路",
        "铁路",
        "线路",
        "思路",
        "出路",
        "江湖",
        "河湖",
        "家园",
        "花园",
        "乐园",
    ]
)
_NUMBER_RE = re.compile(r"\d{2,}")
# Title boilerplate: nearly every proposal title reads "关于……的建议" and many messages
# "反映……的问题"; left in, these make unrelated titles look alike.
_TITLE_TEMPLATE = re.compile(
    r"关于|的建议|的提案|建议|提案|的问题|问题|反映|请求|咨询|投诉|请问|进一步|加快|加强|推进|完善|促进|的"
)


def clean_for_overlap(text: str) -> str:
    """Text reduced to what character overlap should compare.

    NFKC, lower case, anonymisation masks removed, and whitespace and punctuation dropped so
    that a re-punctuated copy still counts as a copy.
    """
    text = _MASK_RE.sub("", unicodedata.normalize("NFKC", text).lower())
    return "".join(ch for ch in text if not _is_noise(ch))


def _is_noise(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return ch.isspace() or cat[0] in "PSZC"


def _shingles(text: str, n: int = SHINGLE_SIZE) -> frozenset[str]:
    if len(text) < n:
        return frozenset([text]) if text else frozenset()
    return frozenset(text[i : i + n] for i in range(len(text) - n + 1))


def _entities(text: str) -> frozenset[str]:
    text = _MASK_RE.sub("", unicodedata.normalize("NFKC", text))
    found = set()
    for match in _ENTITY_RE.finditer(text):
        name = match.group(1)
        if name[:2] not in _GENERIC_PREFIXES:
            found.add(name)
    return frozenset(found)


@dataclass(frozen=True)
class DocSignature:
    """Everything the pair features need from one text, computed once per text."""

    hash: str
    shingles: frozenset[str]
    title_bigrams: frozenset[str]
    entities: frozenset[str]
    numbers: frozenset[str]
    length: int


def signature(title: str, content: str) -> DocSignature:
    """Compute the signature of a proposal from its title and content."""
    full = clean_for_overlap(f"{title}\n{content}")
    title_clean = _TITLE_TEMPLATE.sub("", clean_for_overlap(title)) or full[:30]
    raw = f"{title}\n{content}"
    numbers = frozenset(_NUMBER_RE.findall(_MASK_RE.sub("", unicodedata.normalize("NFKC", raw))))
    return DocSignature(
        hash=hashlib.sha1(full.encode("utf-8")).hexdigest(),
        shingles=_shingles(full),
        title_bigrams=_shingles(title_clean, 2),
        entities=_entities(raw),
        numbers=numbers,
        length=len(full),
    )


def _mismatch(a: frozenset[str], b: frozenset[str]) -> float:
    # Unknown (one side names nothing) is not evidence of a difference.
    if not a or not b:
        return 0.0
    return 1.0 - len(a & b) / len(a | b)


def rarity_weights(signatures: Sequence[DocSignature]) -> dict[str, float]:
    """IDF weight of every content 3-gram and title bigram over a set of texts.

    Smoothed as 1 + ln((n + 1) / (df + 1)), so a term in every text still weighs 1 (never 0:
    in a pool of two texts the shared terms still count). Title bigrams are keyed with a
    leading tab so they never collide with 3-grams.
    """
    df: dict[str, int] = {}
    for sig in signatures:
        for term in sig.shingles:
            df[term] = df.get(term, 0) + 1
        for term in sig.title_bigrams:
            key = "\t" + term
            df[key] = df.get(key, 0) + 1
    n = len(signatures)
    return {term: 1.0 + float(np.log((n + 1) / (count + 1))) for term, count in df.items()}


def _weighted(terms: frozenset[str], idf: dict[str, float] | None, prefix: str = "") -> float:
    if idf is None:
        return float(len(terms))
    # Weights come from the same texts, so a term is missing only for a text scored outside
    # its pool; it then counts like a common term (1), never as a rare one.
    return float(sum(idf.get(prefix + t, 1.0) for t in terms))


def pair_features(
    a: DocSignature,
    b: DocSignature,
    cosine: float,
    background: float,
    idf: dict[str, float] | None = None,
) -> np.ndarray:
    """Feature vector (in `FEATURE_NAMES` order) for one pair.

    `background` is the mean of both texts' typical neighbour cosine (see
    `neighbour_background`); `cosine - background` is the rank-relative similarity. `idf`
    (from `rarity_weights` over the pool) weights the rare-term features; without it every
    term weighs 1.
    """
    inter = len(a.shingles & b.shingles)
    union = len(a.shingles | b.shingles) or 1
    smaller = min(len(a.shingles), len(b.shingles)) or 1
    t_inter = len(a.title_bigrams & b.title_bigrams)
    t_union = len(a.title_bigrams | b.title_bigrams) or 1
    lengths = sorted((a.length, b.length))
    shared = _weighted(a.shingles & b.shingles, idf)
    w_a, w_b = _weighted(a.shingles, idf), _weighted(b.shingles, idf)
    t_shared = _weighted(a.title_bigrams & b.title_bigrams, idf, "\t")
    t_all = _weighted(a.title_bigrams | b.title_bigrams, idf, "\t")
    return np.array(
        [
            float(a.hash == b.hash and a.length > 0),
            inter / union,
            inter / smaller,
            t_inter / t_union,
            cosine,
            cosine - background,
            _mismatch(a.entities, b.entities),
            _mismatch(a.numbers, b.numbers),
            (lengths[0] + 1) / (lengths[1] + 1),
            shared / max(w_a + w_b - shared, 1e-9),
            shared / max(min(w_a, w_b), 1e-9),
            t_shared / max(t_all, 1e-9),
        ],
        dtype=np.float64,
    )


def neighbour_background(vectors: np.ndarray, k: int = 10, chunk: int = 1024) -> np.ndarray:
    """Each row's mean cosine to its k nearest other rows: how crowded its neighbourhood is.

    With fewer than two rows there is no neighbourhood; the background is then the
    typical cosine of unrelated e5 texts (0.9) so that relative features stay meaningful.
    """
    n = len(vectors)
    if n < 2:
        return np.full(n, 0.9, dtype=np.float64)
    k = min(k, n - 1)
    out = np.empty(n, dtype=np.float64)
    vecs = np.asarray(vectors, dtype=np.float32)
    for start in range(0, n, chunk):
        sims = vecs[start : start + chunk] @ vecs.T
        rows = np.arange(sims.shape[0])
        sims[rows, rows + start] = -np.inf  # not its own neighbour
        top = np.partition(sims, n - k, axis=1)[:, n - k :]
        out[start : start + chunk] = top.mean(axis=1)
    return out


@dataclass(frozen=True)
class DedupCalibration:
    """Logistic regression over standardised pair features, plus the rule for `near`.

    Attributes:
        coef: one weight per feature in `features`.
        intercept: the bias term.
        mean, scale: standardisation applied before the weights.
        features: feature names, checked against `FEATURE_NAMES` on load.
        near_containment: char 3-gram containment at or above which a pair is `near`.
        info: how and on what it was fitted (free-form, for the record).
    """

    coef: tuple[float, ...]
    intercept: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    features: tuple[str, ...] = FEATURE_NAMES
    near_containment: float = 0.8
    info: dict[str, object] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | str = DEFAULT_CALIBRATION_PATH) -> DedupCalibration:
        """Read a calibration JSON; a feature list that does not match this code is an error."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        features = tuple(data["features"])
        if features != FEATURE_NAMES:
            raise ValueError(
                f"{path}: calibration features {features} do not match this version's "
                f"{FEATURE_NAMES}; refit with training/dedup_calibration.py"
            )
        n = len(features)
        for key in ("coef", "mean", "scale"):
            if len(data[key]) != n:
                raise ValueError(f"{path}: '{key}' has {len(data[key])} values, expected {n}")
        return cls(
            coef=tuple(float(x) for x in data["coef"]),
            intercept=float(data["intercept"]),
            mean=tuple(float(x) for x in data["mean"]),
            scale=tuple(float(x) for x in data["scale"]),
            features=features,
            near_containment=float(data.get("near_containment", 0.8)),
            info=dict(data.get("info", {})),
        )

    def save(self, path: Path | str) -> None:
        """Write the calibration as a small, readable JSON file."""
        data = {
            "features": list(self.features),
            "coef": [round(x, 6) for x in self.coef],
            "intercept": round(self.intercept, 6),
            "mean": [round(x, 6) for x in self.mean],
            "scale": [round(x, 6) for x in self.scale],
            "near_containment": self.near_containment,
            "info": self.info,
        }
        Path(path).write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", "utf-8")


class DuplicateScorer:
    """Turns pair features into a calibrated probability and a kind (exact, near, semantic)."""

    def __init__(self, calibration: DedupCalibration | None = None) -> None:
        self.calibration = calibration or DedupCalibration.load()
        cal = self.calibration
        self._coef = np.asarray(cal.coef, dtype=np.float64)
        self._mean = np.asarray(cal.mean, dtype=np.float64)
        self._scale = np.where(np.asarray(cal.scale) > 0, cal.scale, 1.0).astype(np.float64)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """Calibrated P(same matter) for rows of features (n, len(FEATURE_NAMES))."""
        features = np.atleast_2d(np.asarray(features, dtype=np.float64))
        if features.shape[1] != len(self._coef):
            raise ValueError(
                f"expected {len(self._coef)} features per pair, got {features.shape[1]}"
            )
        z = ((features - self._mean) / self._scale) @ self._coef + self.calibration.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    def kinds(self, features: np.ndarray) -> list[PairKind]:
        """`exact` for equal normalised text, `near` for high containment, else `semantic`."""
        features = np.atleast_2d(features)
        i_exact = FEATURE_NAMES.index("exact")
        i_cont = FEATURE_NAMES.index("char_containment")
        out: list[PairKind] = []
        for row in features:
            if row[i_exact] >= 1.0:
                out.append("exact")
            elif row[i_cont] >= self.calibration.near_containment:
                out.append("near")
            else:
                out.append("semantic")
        return out

    def score(
        self,
        signatures: Sequence[DocSignature],
        vectors: np.ndarray,
        background: np.ndarray,
        pairs: Sequence[tuple[int, int]],
        idf: dict[str, float] | None = None,
    ) -> tuple[np.ndarray, list[PairKind]]:
        """Probabilities and kinds for index pairs into `signatures`/`vectors`/`background`.

        `idf` should be `rarity_weights` over the same texts (as `build_pool` computes).
        """
        if not pairs:
            return np.zeros(0), []
        feats = np.vstack(
            [
                pair_features(
                    signatures[i],
                    signatures[j],
                    float(vectors[i] @ vectors[j]),
                    float(background[i] + background[j]) / 2.0,
                    idf,
                )
                for i, j in pairs
            ]
        )
        probs = self.probabilities(feats)
        # An exact repeat is the same matter whatever the other signals say.
        kinds = self.kinds(feats)
        probs = np.where(np.array([k == "exact" for k in kinds]), np.maximum(probs, 0.99), probs)
        return probs, kinds


# ---------------------------------------------------------------------------------------
# Candidate generation and pool scoring


@dataclass
class DedupPool:
    """The texts being compared: rows [0, n_data) come from --data, the rest from --against."""

    ids: list[str]
    signatures: list[DocSignature]
    vectors: np.ndarray
    background: np.ndarray
    n_data: int
    idf: dict[str, float] | None = None

    def __post_init__(self) -> None:
        n = len(self.ids)
        if len(self.signatures) != n or len(self.vectors) != n or len(self.background) != n:
            raise ValueError("ids, signatures, vectors and background must have the same length")
        if not 0 <= self.n_data <= n:
            raise ValueError(f"n_data={self.n_data} outside 0..{n}")


@dataclass(frozen=True)
class PairScore:
    """One scored pair; `id_a` is from --data when the pair crosses files."""

    id_a: str
    id_b: str
    score: float
    kind: PairKind


def build_pool(
    ids: Sequence[str],
    titles: Sequence[str],
    contents: Sequence[str],
    vectors: np.ndarray,
    *,
    n_data: int | None = None,
    background_k: int = 10,
) -> DedupPool:
    """Signatures and neighbourhood background for a set of texts with their embeddings."""
    sigs = [signature(t, c) for t, c in zip(titles, contents, strict=True)]
    vecs = np.asarray(vectors, dtype=np.float32)
    return DedupPool(
        ids=list(ids),
        signatures=sigs,
        vectors=vecs,
        background=neighbour_background(vecs, k=background_k),
        n_data=len(ids) if n_data is None else n_data,
        idf=rarity_weights(sigs),
    )


def char_candidates(
    signatures: Sequence[DocSignature], *, min_overlap: float = 0.3, max_df: int | None = None
) -> set[tuple[int, int]]:
    """Pairs (i < j) that share many rare character 3-grams, plus all equal-hash pairs.

    A sparse co-occurrence product over 3-grams that occur in at most `max_df` texts
    (default max(50, 2% of texts)): near-verbatim copies share their rare 3-grams, while
    common ones ("的问题") would make the product quadratic. Exact and deterministic, so
    no MinHash dependency is needed at the scale of a city's proposal history.
    """
    from scipy import sparse

    n = len(signatures)
    pairs: set[tuple[int, int]] = set()
    by_hash: dict[str, list[int]] = {}
    for i, sig in enumerate(signatures):
        if sig.length:
            by_hash.setdefault(sig.hash, []).append(i)
    for members in by_hash.values():
        for x, i in enumerate(members):
            pairs.update((i, j) for j in members[x + 1 :])
    if n < 2:
        return pairs
    max_df = max_df or max(50, int(0.02 * n))
    vocab: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    for i, sig in enumerate(signatures):
        for sh in sig.shingles:
            rows.append(i)
            cols.append(vocab.setdefault(sh, len(vocab)))
    mat = sparse.csr_matrix(
        (np.ones(len(rows), dtype=np.int32), (rows, cols)), shape=(n, len(vocab))
    )
    df = np.asarray(mat.sum(axis=0)).ravel()
    keep = np.flatnonzero((df <= max_df) & (df >= 2))
    mat = mat[:, keep].tocsr()
    sizes = np.asarray(mat.sum(axis=1)).ravel()
    shared = sparse.triu(mat @ mat.T, k=1).tocoo()
    smaller = np.minimum(sizes[shared.row], sizes[shared.col])
    ok = shared.data >= min_overlap * np.maximum(smaller, 1)
    pairs.update(zip(shared.row[ok].tolist(), shared.col[ok].tolist(), strict=True))
    return pairs


def candidate_pairs(pool: DedupPool, *, k: int = 10) -> list[tuple[int, int]]:
    """Embedding top-k neighbours plus char-overlap candidates, oriented and filtered.

    Pairs between two --against texts are dropped (earlier years were checked before);
    a pair across files has its --data text first.
    """
    from model.index import all_pairs

    found = {(i, j) for i, j, _ in all_pairs(pool.vectors, k=k)} if len(pool.ids) > 1 else set()
    found |= char_candidates(pool.signatures)
    out = set()
    for i, j in found:
        i, j = min(i, j), max(i, j)
        if i >= pool.n_data:
            continue  # both from --against
        out.add((i, j))
    return sorted(out)


def score_pool(
    pool: DedupPool,
    pairs: Sequence[tuple[int, int]],
    scorer: DuplicateScorer | None = None,
) -> list[PairScore]:
    """Score index pairs of a pool, keeping their order."""
    scorer = scorer or DuplicateScorer()
    probs, kinds = scorer.score(pool.signatures, pool.vectors, pool.background, pairs, pool.idf)
    return [
        PairScore(pool.ids[i], pool.ids[j], float(p), kind)
        for (i, j), p, kind in zip(pairs, probs, kinds, strict=True)
    ]
