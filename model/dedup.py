"""Duplicate scoring: pair features and a calibrated "same matter" probability.

Each signal covers what the others miss:

- a normalised-text hash catches exact repeats;
- character 3-gram Jaccard and containment, character TF-IDF cosine and the longest
  shared passage catch near-verbatim copies and partial copies (a changed opening, a sentence
  added, one text quoting the other);
- the raw embedding cosine catches rewordings. It is used as it is: a cosine taken relative
  to each text's neighbourhood punishes exactly the matters many people raise, which is
  where duplicates are;
- "same concrete matter": overlap weighted by each n-gram's rarity in the pool rewards the
  specific terms of a matter (an estate's name, a plant, a bus route) and discounts the
  theme words that a whole district shares; named places shared by both texts, or named in
  both and disjoint (a form letter sent about two estates), say whether it is one place.

The corpus statistics (rarity, TF-IDF vocabularies) come from the texts being compared and
need no encoder, so a pool can be built over a whole file while only the texts of the pairs
to be scored are encoded. A logistic regression over these features, fitted on real
labelled pairs by `training/dedup_scorer.py` and shipped as `model/dedup_calibration.json`,
turns them into a probability; the file also holds the flag threshold chosen for a stated
precision.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = [
    "FEATURE_NAMES",
    "DedupCalibration",
    "DedupPool",
    "DocSignature",
    "DuplicateScorer",
    "PairKind",
    "PairScore",
    "build_pool",
    "candidate_pairs",
    "char_candidates",
    "clean_for_overlap",
    "pair_features",
    "rarity_weights",
    "score_pool",
    "signature",
]

PairKind = Literal["exact", "near", "semantic"]

FEATURE_NAMES: tuple[str, ...] = (
    "exact",
    "char_jaccard",
    "char_containment",
    "char_tfidf",
    "longest_shared",
    "title_overlap",
    "title_tfidf",
    "title_rare",
    "cosine",
    "entity_mismatch",
    "number_mismatch",
    "length_ratio",
    "rare_jaccard",
    "rare_containment",
    "rare4_share",
    "rare4_max",
    "rare4_any",
    "shared_places",
    "disjoint_places",
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


# Named places and organisations (jieba's ns/nt/nz tags) in a text's opening, where the
# place of the matter is almost always named.
_PLACE_TAGS = frozenset(["ns", "nt", "nz"])
_PLACE_SPAN = 400
# A 4-gram in at most this share of the pool counts as rare (a matter's specific terms);
# one shared by just the two texts of a pair always does, however small the pool.
RARE_DF_SHARE = 0.01


@dataclass(frozen=True)
class DocSignature:
    """Everything the pair features need from one text, computed once per text."""

    hash: str
    text: str
    shingles: frozenset[str]
    grams4: frozenset[str]
    title_bigrams: frozenset[str]
    entities: frozenset[str]
    numbers: frozenset[str]
    length: int


def places(text: str) -> frozenset[str]:
    """Named places and organisations in the opening of a text (jieba's part-of-speech tags)."""
    import jieba
    import jieba.posseg as pseg

    jieba.setLogLevel(60)  # its start-up banner is not ours to print
    opening = _MASK_RE.sub("", unicodedata.normalize("NFKC", text))[:_PLACE_SPAN]
    return frozenset(
        w.word for w in pseg.cut(opening) if w.flag in _PLACE_TAGS and len(w.word) >= 3
    )


def signature(title: str, content: str) -> DocSignature:
    """Compute the signature of a proposal from its title and content."""
    full = clean_for_overlap(f"{title}\n{content}")
    title_clean = _TITLE_TEMPLATE.sub("", clean_for_overlap(title)) or full[:30]
    raw = f"{title}\n{content}"
    numbers = frozenset(_NUMBER_RE.findall(_MASK_RE.sub("", unicodedata.normalize("NFKC", raw))))
    return DocSignature(
        hash=hashlib.sha1(full.encode("utf-8")).hexdigest(),
        text=full,
        shingles=_shingles(full),
        grams4=_shingles(full, 4),
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
    return {term: 1.0 + math.log((n + 1) / (count + 1)) for term, count in df.items()}


def _weighted(terms: frozenset[str], idf: dict[str, float], prefix: str = "") -> float:
    # Weights come from the same texts, so a term is missing only for a text scored outside
    # its pool; it then counts like a common term (1), never as a rare one.
    return float(sum(idf.get(prefix + t, 1.0) for t in terms))


@dataclass
class PoolStats:
    """Corpus statistics of the texts being compared (no encoder needed).

    Attributes:
        idf: rarity of content 3-grams and title bigrams (`rarity_weights`).
        df4: in how many texts each content 4-gram occurs.
        n: number of texts.
        char_tfidf, title_tfidf: L2-normalised sparse TF-IDF rows, one per text (character
            1-3-grams of the text; character 1-2-grams of the title). Word TF-IDF (jieba) was
            tried and added nothing on real pairs while costing most of the pool's time.
    """

    idf: dict[str, float]
    df4: dict[str, int]
    n: int
    char_tfidf: Any
    title_tfidf: Any


def pool_stats(signatures: Sequence[DocSignature], titles: Sequence[str]) -> PoolStats:
    """Fit the pool's rarity weights and TF-IDF vocabularies on its own texts."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = [s.text for s in signatures]
    df4: dict[str, int] = {}
    for sig in signatures:
        for g in sig.grams4:
            df4[g] = df4.get(g, 0) + 1

    def tfidf(docs: list[str], **kwargs: Any) -> Any:
        if not any(docs):
            docs = [d or " " for d in docs]
        try:
            return TfidfVectorizer(sublinear_tf=True, **kwargs).fit_transform(docs).tocsr()
        except ValueError:  # an empty vocabulary: nothing in common to measure
            from scipy import sparse

            return sparse.csr_matrix((len(docs), 1))

    return PoolStats(
        idf=rarity_weights(signatures),
        df4=df4,
        n=len(signatures),
        char_tfidf=tfidf(texts, analyzer="char", ngram_range=(1, 3)),
        title_tfidf=tfidf(
            [clean_for_overlap(t) for t in titles], analyzer="char", ngram_range=(1, 2)
        ),
    )


def _sparse_cosine(mat: Any, i: int, j: int) -> float:
    return float(mat[i].multiply(mat[j]).sum())


def _pair_cosines(mat: Any, pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """`_sparse_cosine` of many pairs in one sparse product (row slicing costs ~1 ms a call)."""
    rows_a = mat[[i for i, _ in pairs]]
    rows_b = mat[[j for _, j in pairs]]
    return np.asarray(rows_a.multiply(rows_b).sum(axis=1), dtype=np.float64).ravel()


def _longest_shared_run(a: DocSignature, b: DocSignature) -> int:
    """Length of the longest passage of `a` whose every 4-gram also occurs in `b`.

    A linear-time stand-in for the longest common substring (a quoted paragraph, a copied
    request), close enough for a feature and free of the quadratic worst case.
    """
    if not a.grams4 or not b.grams4:
        return 0
    if len(a.text) > len(b.text):
        a, b = b, a
    best = run = 0
    for i in range(len(a.text) - 3):
        if a.text[i : i + 4] in b.grams4:
            run += 1
            best = max(best, run)
        else:
            run = 0
    return best + 3 if best else 0


def pair_features(
    pool: DedupPool, i: int, j: int, cosines: tuple[float, float] | None = None
) -> np.ndarray:
    """Feature vector (in `FEATURE_NAMES` order) for pool texts `i` and `j`.

    `cosines` are the pair's character and title TF-IDF cosines when already computed for a
    batch (`_pair_cosines`); computed here otherwise.
    """
    a, b = pool.signatures[i], pool.signatures[j]
    st = pool.stats
    inter = len(a.shingles & b.shingles)
    union = len(a.shingles | b.shingles) or 1
    smaller = min(len(a.shingles), len(b.shingles)) or 1
    t_inter = len(a.title_bigrams & b.title_bigrams)
    t_union = len(a.title_bigrams | b.title_bigrams) or 1
    lengths = sorted((a.length, b.length))
    shared = _weighted(a.shingles & b.shingles, st.idf)
    w_a, w_b = _weighted(a.shingles, st.idf), _weighted(b.shingles, st.idf)
    t_shared = _weighted(a.title_bigrams & b.title_bigrams, st.idf, "\t")
    t_all = _weighted(a.title_bigrams | b.title_bigrams, st.idf, "\t")
    rare_cut = max(2.0, RARE_DF_SHARE * st.n)
    rare_a = {g for g in a.grams4 if st.df4.get(g, 1) <= rare_cut}
    rare_b = {g for g in b.grams4 if st.df4.get(g, 1) <= rare_cut}
    rare_shared = rare_a & rare_b
    shared4 = a.grams4 & b.grams4
    # The rarest shared 4-gram, as a share of the largest rarity this pool allows, so that
    # pools of different sizes give comparable values.
    log_n = math.log(st.n + 1)
    max_idf4 = max((1 - math.log(st.df4.get(g, 1)) / log_n for g in shared4), default=0.0)
    places_a, places_b = pool.places(i), pool.places(j)
    both_place = bool(places_a) and bool(places_b)
    if cosines is None:
        cosines = (_sparse_cosine(st.char_tfidf, i, j), _sparse_cosine(st.title_tfidf, i, j))
    return np.array(
        [
            float(a.hash == b.hash and a.length > 0),
            inter / union,
            inter / smaller,
            cosines[0],
            math.log1p(_longest_shared_run(a, b)),
            t_inter / t_union,
            cosines[1],
            t_shared / max(t_all, 1e-9),
            float(pool.vectors[i] @ pool.vectors[j]),
            _mismatch(a.entities, b.entities),
            _mismatch(a.numbers, b.numbers),
            (lengths[0] + 1) / (lengths[1] + 1),
            shared / max(w_a + w_b - shared, 1e-9),
            shared / max(min(w_a, w_b), 1e-9),
            len(rare_shared) / (min(len(rare_a), len(rare_b)) + 1),
            max_idf4,
            float(bool(rare_shared)),
            math.log1p(len(places_a & places_b)),
            float(both_place and not places_a & places_b),
        ],
        dtype=np.float64,
    )


@dataclass(frozen=True)
class DedupCalibration:
    """Logistic regression over standardised pair features, the flag threshold and `near`.

    Attributes:
        coef: one weight per feature in `features`.
        intercept: the bias term.
        mean, scale: standardisation applied before the weights.
        features: feature names, checked against `FEATURE_NAMES` on load.
        threshold: the calibrated score at which a pair is flagged, chosen on held-out
            labelled pairs for a stated precision (`info` records which and the recall).
        near_containment: char 3-gram containment at or above which a pair is `near`.
        verbatim_tfidf: character TF-IDF cosine at or above which a pair that names no
            conflicting place is a near-verbatim copy, flagged whatever the rest says.
        info: how and on what it was fitted (free-form, for the record).
    """

    coef: tuple[float, ...]
    intercept: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    features: tuple[str, ...] = FEATURE_NAMES
    threshold: float = 0.5
    near_containment: float = 0.8
    verbatim_tfidf: float = 0.93
    info: dict[str, object] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | str = DEFAULT_CALIBRATION_PATH) -> DedupCalibration:
        """Read a calibration JSON; a feature list that does not match this code is an error."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        features = tuple(data["features"])
        if features != FEATURE_NAMES:
            raise ValueError(
                f"{path}: calibration features {features} do not match this version's "
                f"{FEATURE_NAMES}; refit with training/dedup_scorer.py"
            )
        n = len(features)
        for key in ("coef", "mean", "scale"):
            if len(data[key]) != n:
                raise ValueError(f"{path}: '{key}' has {len(data[key])} values, expected {n}")
        threshold = float(data.get("threshold", 0.5))
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"{path}: threshold {threshold} is not between 0 and 1")
        return cls(
            coef=tuple(float(x) for x in data["coef"]),
            intercept=float(data["intercept"]),
            mean=tuple(float(x) for x in data["mean"]),
            scale=tuple(float(x) for x in data["scale"]),
            features=features,
            threshold=threshold,
            near_containment=float(data.get("near_containment", 0.8)),
            verbatim_tfidf=float(data.get("verbatim_tfidf", 0.93)),
            info=dict(data.get("info", {})),
        )

    def save(self, path: Path | str) -> None:
        """Write the calibration as a small, readable JSON file (atomically)."""
        from model.bundle import write_json

        write_json(Path(path), self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form that `load` reads back."""
        return {
            "features": list(self.features),
            "coef": [round(x, 6) for x in self.coef],
            "intercept": round(self.intercept, 6),
            "mean": [round(x, 6) for x in self.mean],
            "scale": [round(x, 6) for x in self.scale],
            "threshold": round(self.threshold, 4),
            "near_containment": self.near_containment,
            "verbatim_tfidf": self.verbatim_tfidf,
            "info": self.info,
        }


class DuplicateScorer:
    """Turns pair features into a calibrated probability and a kind (exact, near, semantic)."""

    def __init__(self, calibration: DedupCalibration | None = None) -> None:
        self.calibration = calibration or DedupCalibration.load()
        cal = self.calibration
        self._coef = np.asarray(cal.coef, dtype=np.float64)
        self._mean = np.asarray(cal.mean, dtype=np.float64)
        self._scale = np.where(np.asarray(cal.scale) > 0, cal.scale, 1.0).astype(np.float64)

    @property
    def threshold(self) -> float:
        """The calibrated score at which a pair is flagged by default."""
        return self.calibration.threshold

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
        self, pool: DedupPool, pairs: Sequence[tuple[int, int]]
    ) -> tuple[np.ndarray, list[PairKind]]:
        """Probabilities and kinds for index pairs into the pool."""
        if not pairs:
            return np.zeros(0), []
        char = _pair_cosines(pool.stats.char_tfidf, pairs)
        title = _pair_cosines(pool.stats.title_tfidf, pairs)
        feats = np.vstack(
            [
                pair_features(pool, i, j, (float(c), float(t)))
                for (i, j), c, t in zip(pairs, char, title, strict=True)
            ]
        )
        probs = self.probabilities(feats)
        return self.floored(feats, probs), self.kinds(feats)

    def floored(self, features: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """Probabilities with the copy rules applied.

        An exact repeat is the same matter whatever the other signals say (0.99). A
        near-verbatim copy that names no conflicting place is flagged (at least the
        threshold, and 0.95): on real messages such pairs are all duplicates, while form
        letters sent about two estates differ in the places they name, so `near` alone
        (high containment) is not floored.
        """
        features = np.atleast_2d(features)
        exact = features[:, FEATURE_NAMES.index("exact")] >= 1.0
        copy = (
            features[:, FEATURE_NAMES.index("char_tfidf")] >= self.calibration.verbatim_tfidf
        ) & (features[:, FEATURE_NAMES.index("entity_mismatch")] == 0.0)
        probs = np.where(copy, np.maximum(probs, max(0.95, self.threshold)), probs)
        return np.where(exact, np.maximum(probs, 0.99), probs)


# ---------------------------------------------------------------------------------------
# Pools, candidate generation and pool scoring


@dataclass
class DedupPool:
    """The texts being compared: rows [0, n_data) come from --data, the rest from --against.

    `vectors` may hold zero rows for texts that are only there for the corpus statistics
    (scoring given pairs encodes only the texts of those pairs).
    """

    ids: list[str]
    signatures: list[DocSignature]
    vectors: np.ndarray
    n_data: int
    stats: PoolStats
    texts: list[str] = field(default_factory=list)
    _places: dict[int, frozenset[str]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        n = len(self.ids)
        if len(self.signatures) != n or len(self.vectors) != n or self.stats.n != n:
            raise ValueError("ids, signatures, vectors and statistics must have the same length")
        if not 0 <= self.n_data <= n:
            raise ValueError(f"n_data={self.n_data} outside 0..{n}")
        if self.texts and len(self.texts) != n:
            raise ValueError("texts must have one entry per id")

    def places(self, i: int) -> frozenset[str]:
        """Named places of text `i`, tagged on first use (only scored texts pay for it)."""
        if i not in self._places:
            self._places[i] = places(self.texts[i]) if self.texts else frozenset()
        return self._places[i]


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
) -> DedupPool:
    """Signatures and corpus statistics for a set of texts with their embeddings."""
    sigs = [signature(t, c) for t, c in zip(titles, contents, strict=True)]
    return DedupPool(
        ids=list(ids),
        signatures=sigs,
        vectors=np.asarray(vectors, dtype=np.float32),
        n_data=len(ids) if n_data is None else n_data,
        stats=pool_stats(sigs, list(titles)),
        texts=[f"{t}\n{c}" for t, c in zip(titles, contents, strict=True)],
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
    probs, kinds = scorer.score(pool, pairs)
    return [
        PairScore(pool.ids[i], pool.ids[j], float(p), kind)
        for (i, j), p, kind in zip(pairs, probs, kinds, strict=True)
    ]
