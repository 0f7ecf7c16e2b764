"""Reference-topic matching (提案参考题目): rank topics per proposal, flag proposals no topic fits.

Topics are short titles, proposals long texts, so topics are encoded as e5 `query:` and
proposals as `passage:` (the asymmetric use e5 was trained for). The score is a logistic
model over seven features per (proposal, topic):

- `cosine`: raw embedding cosine;
- `cosine_rel`: cosine minus the proposal's mean cosine over all topics (e5 cosines sit
  in a narrow band, so what matters is how far a topic stands out for this proposal);
- `gap`: cosine minus the proposal's best cosine (0 for its top topic);
- `lexical`: character 1-2-gram TF-IDF cosine, which catches shared names (places,
  programmes) that embeddings blur;
- `rank_in_proposal`: 1 / (1 + the topic's rank among the proposal's topics by cosine);
- `rank_in_topic`: 1 / (1 + the proposal's rank among the batch's proposals for that topic),
  the topic's side of the question: a proposal that is only some topic's tenth-best match
  rarely answers it (on the demo this is what lets "no topic" proposals be told apart);
- `title_lexical`: character 2-3-gram TF-IDF cosine between the topic and the proposal's
  title (the text's first line), where proposals name their matter.

`rank_in_topic` depends on the batch: `match_topics` ranks against the proposals it is given
plus any `context_vectors` (scoring one draft alone, pass the year's proposal vectors).

The default weights (`DEFAULT_WEIGHTS`, read from `model/topic_calibration.json`) were fitted
by `tian fit topic-weights` (training/topic_weights.py) on labelled (proposal, topic) pairs;
the output is a calibrated probability that the proposal answers the topic. A ranked topic at
or above `threshold` (the cut-off fitted on the same answer key by training/topic_cutoff.py,
stored in the same file) counts as answered: that is what coverage counts per topic.

`no_topic` (the proposal answers no topic) is a proposal-level question, and the pair score
answers it badly: on the demo, proposals without a topic often have a fairly close topic (a
lift proposal next to "old estates"), while answered proposals with a plain title score low
on their right topic. What separates them better is whether the best topic *stands out*:
`standout_margin`, the gap between the proposal's best and second-best topic in cosines
standardised on both sides (over the proposal's topics and over the topic's proposals). With
`no_topic_margin` set, `no_topic` is that margin below the fitted cut; without it (weights
built by hand), no topic reaching `threshold`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_WEIGHTS",
    "Topic",
    "TopicMatch",
    "TopicWeights",
    "coverage",
    "coverage_table",
    "lexical_similarity",
    "match_topics",
    "pair_features",
    "read_topics",
    "standout_margin",
    "title_of",
    "topic_features",
    "weights_from_json",
]

TOPIC_FEATURES: tuple[str, ...] = (
    "cosine",
    "cosine_rel",
    "gap",
    "lexical",
    "rank_in_proposal",
    "rank_in_topic",
    "title_lexical",
)


@dataclass(frozen=True)
class Topic:
    """One reference topic."""

    topic_id: str
    topic: str


@dataclass(frozen=True)
class TopicWeights:
    """Logistic weights over `TOPIC_FEATURES`, the answered cut-off and the no-topic rule.

    Attributes:
        coef, intercept: the logistic weights.
        threshold: a ranked topic at or above this score counts as answered.
        info: how the values were fitted, with figures.
        no_topic_margin: `no_topic` when the proposal's `standout_margin` is below this;
            None flags proposals no topic reaches `threshold` for instead.
    """

    coef: tuple[float, ...]
    intercept: float
    threshold: float = 0.5
    info: dict[str, Any] = field(default_factory=dict)
    no_topic_margin: float | None = None


DEFAULT_WEIGHTS_PATH = Path(__file__).with_name("topic_calibration.json")


def weights_from_json(path: Path | str) -> TopicWeights:
    """Load topic weights saved by the calibration scripts (same fields as `TopicWeights`)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    coef = tuple(float(x) for x in data["coef"])
    if len(coef) != len(TOPIC_FEATURES):
        raise ValueError(f"{path}: expected {len(TOPIC_FEATURES)} topic weights, got {len(coef)}")
    threshold = float(data.get("threshold", 0.5))
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"{path}: threshold must be between 0 and 1, not {threshold}")
    margin = data.get("no_topic_margin")
    if margin is not None and not float(margin) > 0.0:
        raise ValueError(f"{path}: no_topic_margin must be positive, not {margin}")
    return TopicWeights(
        coef,
        float(data["intercept"]),
        threshold,
        dict(data.get("info", {})),
        None if margin is None else float(margin),
    )


# The shipped weights and "no topic" cut-off, fitted on the demo's labelled topics by
# `tian fit topic-weights --demo data/demo` (figures in the file's "info").
DEFAULT_WEIGHTS = weights_from_json(DEFAULT_WEIGHTS_PATH)


def read_topics(path: Path | str) -> list[Topic]:
    """Read a topics file: CSV/XLSX with `topic_id` and `topic` columns, or TXT one a line.

    TXT topics get ids T001, T002, ... in file order. A CSV/XLSX without `topic_id` gets
    the same numbering; one without `topic` (or 题目/参考题目) is an error naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    suffix = path.suffix.lower()
    if suffix in (".txt", ""):
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8-sig").splitlines()]
        texts = [ln for ln in lines if ln]
        topics = [Topic(f"T{i + 1:03d}", t) for i, t in enumerate(texts)]
    elif suffix in (".csv", ".xlsx", ".xlsm"):
        headers, rows = _read_table(path)
        topic_col = next(
            (h for h in ("topic", "题目", "参考题目", "topic_description") if h in headers), None
        )
        if topic_col is None:
            raise ValueError(f"{path}: no 'topic' column (found: {', '.join(headers)})")
        id_col = next((h for h in ("topic_id", "编号", "id") if h in headers), None)
        topics = []
        for n, row in enumerate(rows):
            text = (row.get(topic_col) or "").strip()
            if not text:
                raise ValueError(f"{path}: row {n + 2}: empty '{topic_col}'")
            tid = (row.get(id_col) or "").strip() if id_col else ""
            topics.append(Topic(tid or f"T{n + 1:03d}", text))
    else:
        raise ValueError(f"{path}: topics file must be .csv, .xlsx or .txt, not '{suffix}'")
    if not topics:
        raise ValueError(f"{path}: no topics found")
    from model.text import normalize_text

    topics = [Topic(t.topic_id, normalize_text(t.topic)) for t in topics]
    seen: set[str] = set()
    for t in topics:
        if t.topic_id in seen:
            raise ValueError(f"{path}: duplicate topic_id '{t.topic_id}'")
        seen.add(t.topic_id)
    return topics


def _read_table(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    try:
        from model.tables import read_table
    except ImportError:  # tables module not available: plain CSV only
        if path.suffix.lower() != ".csv":
            raise
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            return list(reader.fieldnames or []), [dict(r) for r in reader]
    headers, rows = read_table(path)
    return list(headers), [dict(r) for r in rows]


def lexical_similarity(
    proposals: Sequence[str], topics: Sequence[str], *, ngram_range: tuple[int, int] = (1, 2)
) -> np.ndarray:
    """Character n-gram TF-IDF cosine, shape (n_proposals, n_topics)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(analyzer="char", ngram_range=ngram_range, sublinear_tf=True)
    vec.fit(list(proposals) + list(topics))
    p = vec.transform(proposals)
    t = vec.transform(topics)
    return np.asarray((p @ t.T).toarray(), dtype=np.float64)


def title_of(text: str) -> str:
    """A proposal text's title: its first non-empty line (`Proposal.text` puts it there)."""
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")


def _inverse_rank(scores: np.ndarray, axis: int) -> np.ndarray:
    """1 / (1 + rank) of each entry along `axis`, rank 0 the highest score."""
    ranks = np.argsort(np.argsort(-scores, axis=axis, kind="stable"), axis=axis, kind="stable")
    return 1.0 / (1.0 + ranks)


def topic_features(
    cosines: np.ndarray,
    lexical: np.ndarray,
    title_lexical: np.ndarray | None = None,
    *,
    context_cosines: np.ndarray | None = None,
) -> np.ndarray:
    """Features (n_proposals, n_topics, len(TOPIC_FEATURES)); see the module docstring.

    Args:
        cosines: (n_proposals, n_topics) e5 cosines.
        lexical: same shape, `lexical_similarity` of the full texts.
        title_lexical: same shape, `lexical_similarity(..., ngram_range=(2, 3))` of the
            titles; zeros when absent.
        context_cosines: (n_other, n_topics) cosines of other proposals of the same year,
            ranked against for `rank_in_topic` but not scored.
    """
    cos = np.asarray(cosines, dtype=np.float64)
    rel = cos - cos.mean(axis=1, keepdims=True)
    gap = cos - cos.max(axis=1, keepdims=True)
    in_proposal = _inverse_rank(cos, axis=1)
    if context_cosines is not None and len(context_cosines):
        ctx = np.asarray(context_cosines, dtype=np.float64)
        # Rank of each proposal among the context plus itself (not the other scored ones).
        ahead = (ctx[None, :, :] > cos[:, None, :]).sum(axis=1)
        batch_rank = np.argsort(np.argsort(-cos, axis=0, kind="stable"), axis=0, kind="stable")
        in_topic = 1.0 / (1.0 + ahead + batch_rank)
    else:
        in_topic = _inverse_rank(cos, axis=0)
    title = np.zeros_like(cos) if title_lexical is None else np.asarray(title_lexical, np.float64)
    lex = np.asarray(lexical, dtype=np.float64)
    return np.stack([cos, rel, gap, lex, in_proposal, in_topic, title], axis=-1)


def standout_margin(
    cosines: np.ndarray, *, context_cosines: np.ndarray | None = None
) -> np.ndarray:
    """How far each proposal's best topic stands out from its second best, shape (n_proposals,).

    Cosines are standardised twice and the two added: over the proposal's topics (is this
    topic close for this proposal?) and over the topic's proposals, the scored ones plus
    `context_cosines` (is this proposal close for this topic?). The margin is the best
    topic's sum minus the second best's. With one topic it is infinite (nothing to compare);
    with a single proposal and no context, only the proposal's side counts.
    """
    cos = np.asarray(cosines, dtype=np.float64)
    if cos.shape[1] < 2:
        return np.full(cos.shape[0], np.inf)
    row = (cos - cos.mean(axis=1, keepdims=True)) / _safe_std(cos, axis=1)
    pool = cos
    if context_cosines is not None and len(context_cosines):
        pool = np.vstack([np.asarray(context_cosines, dtype=np.float64), cos])
    col = np.zeros_like(cos)
    if len(pool) > 1:
        col = (cos - pool.mean(axis=0, keepdims=True)) / _safe_std(pool, axis=0)
    both = np.sort(row + col, axis=1)
    return np.asarray(both[:, -1] - both[:, -2])


def _safe_std(x: np.ndarray, axis: int) -> np.ndarray:
    std = x.std(axis=axis, keepdims=True)
    return np.where(std > 0, std, 1.0)


def pair_features(
    proposal_texts: Sequence[str],
    proposal_vectors: np.ndarray,
    topics: Sequence[str],
    topic_vectors: np.ndarray,
    *,
    context_vectors: np.ndarray | None = None,
) -> np.ndarray:
    """All `TOPIC_FEATURES` of every (proposal, topic) pair from texts and e5 vectors."""
    tv = np.asarray(topic_vectors, np.float32)
    cos = np.asarray(proposal_vectors, dtype=np.float32) @ tv.T
    ctx = None if context_vectors is None else np.asarray(context_vectors, np.float32) @ tv.T
    lex = lexical_similarity(proposal_texts, topics)
    titles = lexical_similarity([title_of(t) for t in proposal_texts], topics, ngram_range=(2, 3))
    return topic_features(cos, lex, titles, context_cosines=ctx)


@dataclass(frozen=True)
class TopicMatch:
    """Ranked topics for one proposal."""

    id: str
    topics: list[tuple[str, float]]  # (topic_id, calibrated score), best first
    no_topic: bool

    def to_dict(self) -> dict[str, Any]:
        """The JSONL record written by `tian topics`."""
        return {
            "id": self.id,
            "topics": [{"topic_id": t, "score": round(s, 4)} for t, s in self.topics],
            "no_topic": self.no_topic,
        }


def match_topics(
    proposal_ids: Sequence[str],
    proposal_texts: Sequence[str],
    proposal_vectors: np.ndarray,
    topics: Sequence[Topic],
    topic_vectors: np.ndarray,
    *,
    top_k: int = 5,
    weights: TopicWeights = DEFAULT_WEIGHTS,
    context_vectors: np.ndarray | None = None,
) -> list[TopicMatch]:
    """Rank topics for each proposal by calibrated score; flag those no topic fits.

    `no_topic` follows `weights.no_topic_margin` (see the module docstring). `context_vectors`
    are passage vectors of other proposals of the year that are ranked and standardised
    against (`rank_in_topic`, `standout_margin`) but not scored: pass them when scoring a few
    proposals or one draft, whose place among the year's proposals is what the weights expect.
    """
    if len(proposal_ids) != len(proposal_texts) or len(proposal_ids) != len(proposal_vectors):
        raise ValueError("proposal ids, texts and vectors must have the same length")
    if len(topics) != len(topic_vectors):
        raise ValueError("topics and topic vectors must have the same length")
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, not {top_k}")
    if not proposal_ids:
        return []
    feats = pair_features(
        proposal_texts,
        proposal_vectors,
        [t.topic for t in topics],
        topic_vectors,
        context_vectors=context_vectors,
    )
    z = feats @ np.asarray(weights.coef) + weights.intercept
    probs = 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))
    if weights.no_topic_margin is None:
        no_topic = probs.max(axis=1) < weights.threshold
    else:
        cos = feats[..., TOPIC_FEATURES.index("cosine")]
        ctx = None
        if context_vectors is not None:
            ctx = np.asarray(context_vectors, np.float32) @ np.asarray(topic_vectors, np.float32).T
        no_topic = standout_margin(cos, context_cosines=ctx) < weights.no_topic_margin
    k = min(top_k, len(topics))
    out = []
    for i, pid in enumerate(proposal_ids):
        order = np.argsort(-probs[i], kind="stable")[:k]
        ranked = [(topics[j].topic_id, float(probs[i, j])) for j in order]
        out.append(TopicMatch(pid, ranked, no_topic=bool(no_topic[i])))
    return out


def coverage(
    matches: Sequence[TopicMatch],
    topics: Sequence[Topic],
    *,
    threshold: float | None = None,
    confirmed: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """How many proposals answer each topic (a ranked topic at or above `threshold`, by
    default the fitted cut-off `DEFAULT_WEIGHTS.threshold`), and which proposals answer none
    (those flagged `no_topic`; the flag, not the cut-off, is what was fitted for that).

    `confirmed` maps a proposal id to the topic ids a reviewer confirmed or assigned (an empty
    list: the reviewer says it answers none); for those proposals the reviewer's word replaces
    the model's ranking. They are listed under `confirmed_proposals`.

    Returns a JSON-ready dict: `topics` (topic_id, topic, count, proposal ids), `topics_without_proposals`,
    `proposals_without_topic`.
    """
    if threshold is None:
        threshold = DEFAULT_WEIGHTS.threshold
    confirmed = confirmed or {}
    answered: dict[str, list[str]] = {t.topic_id: [] for t in topics}
    without = []
    seen = {m.id for m in matches}
    extra = [TopicMatch(pid, [], no_topic=True) for pid in confirmed if pid not in seen]
    for m in [*matches, *extra]:
        if m.id in confirmed:
            hits = list(confirmed[m.id])
            answers_none = not hits
        else:
            hits = [tid for tid, s in m.topics if s >= threshold]
            answers_none = m.no_topic
        for tid in hits:
            answered.setdefault(tid, []).append(m.id)
        if answers_none:
            without.append(m.id)
    rows = [
        {
            "topic_id": t.topic_id,
            "topic": t.topic,
            "count": len(answered[t.topic_id]),
            "proposals": answered[t.topic_id],
        }
        for t in topics
    ]
    return {
        "threshold": threshold,
        "topics": rows,
        "topics_without_proposals": [r["topic_id"] for r in rows if r["count"] == 0],
        "proposals_without_topic": without,
        "confirmed_proposals": sorted(confirmed),
    }


def coverage_table(report: dict[str, Any], *, width: int = 40) -> str:
    """A readable table of a coverage report, topics with most proposals first."""
    lines = [f"{'topic_id':<10} {'count':>5}  topic"]
    for row in sorted(report["topics"], key=lambda r: (-r["count"], r["topic_id"])):
        text = row["topic"] if len(row["topic"]) <= width else row["topic"][: width - 1] + "…"
        lines.append(f"{row['topic_id']:<10} {row['count']:>5}  {text}")
    lines.append(
        f"topics with no proposal: {len(report['topics_without_proposals'])}; "
        f"proposals with no topic: {len(report['proposals_without_topic'])}"
    )
    return "\n".join(lines)
