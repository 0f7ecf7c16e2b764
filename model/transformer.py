"""The fine-tuned transformer classifier: a shared encoder with three heads.

    category   softmax over categories
    main_unit  softmax over handling units
    co_units   independent sigmoids over units (multi-label)

Training on a 2-core CPU is made practical by freezing the word embeddings and the lower
layers: their outputs are computed once (see `training.transformer`) and only the top
`trainable_layers` layers and the heads learn. A bundle therefore stores only what training
changed (the top layers and the heads, a few MB) plus the tokenizer, and names the base model,
which `model.backbone.resolve_backbone` rebuilds offline when needed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from model.calibration import Calibration, combine, sigmoid, softmax
from model.heads import HEADS, SINGLE_LABEL_HEADS

log = logging.getLogger(__name__)

SETTINGS_FILE = "transformer.json"
WEIGHTS_FILE = "trained.safetensors"
TOKENIZER_DIR = "tokenizer"
BASELINE_DIR = "baseline"


@dataclass(frozen=True)
class InputSettings:
    """How a proposal becomes token ids (saved with the model, used identically at inference).

    Attributes:
        max_length: tokens per proposal, special tokens included.
        tail_tokens: with head+tail truncation, tokens kept from the end of the content, where
            members put their concrete suggestions; 0 means plain truncation.
        prefix: text put before the title (e5 models expect "query: " or "passage: ").
    """

    max_length: int = 256
    tail_tokens: int = 64
    prefix: str = ""


class ProposalTokenizer:
    """Title plus the head and tail of the content, within `max_length` tokens."""

    def __init__(self, tokenizer: Any, settings: InputSettings) -> None:
        self.tokenizer = tokenizer
        self.settings = settings
        with_specials = tokenizer("x", add_special_tokens=True)["input_ids"]
        bare = tokenizer("x", add_special_tokens=False)["input_ids"]
        start = _find(with_specials, bare)
        self.prefix_ids = with_specials[:start]
        self.suffix_ids = with_specials[start + len(bare) :]
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def encode(self, title: str, content: str) -> list[int]:
        s = self.settings
        budget = s.max_length - len(self.prefix_ids) - len(self.suffix_ids)
        head_text = f"{s.prefix}{title}".strip()
        title_ids = self._ids(head_text)[: max(budget // 2, 1)] if head_text else []
        content_ids = self._ids(content) if content else []
        room = budget - len(title_ids)
        if len(content_ids) > room:
            tail = min(s.tail_tokens, room // 2)
            content_ids = content_ids[: room - tail] + (content_ids[-tail:] if tail else [])
        return self.prefix_ids + title_ids + content_ids + self.suffix_ids

    def _ids(self, text: str) -> list[int]:
        # Long texts are cut by characters first: tokenising 30k characters to keep 256 is waste.
        # verbose=False: contents longer than the model are expected here, we cut them ourselves.
        ids: list[int] = self.tokenizer(text[:4000], add_special_tokens=False, verbose=False)[
            "input_ids"
        ]
        return ids

    def encode_many(self, titles: Sequence[str], contents: Sequence[str]) -> list[list[int]]:
        return [self.encode(t, c) for t, c in zip(titles, contents, strict=True)]


def _find(haystack: list[int], needle: list[int]) -> int:
    for i in range(len(haystack) - len(needle) + 1):
        if haystack[i : i + len(needle)] == needle:
            return i
    raise ValueError("cannot locate the special tokens of this tokenizer")


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic padding: pad to the longest sequence of this batch only."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, s in enumerate(sequences):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (less padding), longest first."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The (batch, 1, 1, seq) additive attention mask that BERT-like layers take."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def run_layers(layers: Any, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    extended = additive_mask(mask, hidden.dtype)
    for layer in layers:
        out = layer(hidden, attention_mask=extended)
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


class MultiTaskModel(nn.Module):
    """Encoder (embeddings + layers of a BERT-like model) with one linear head per task."""

    def __init__(self, backbone: Any, label_counts: dict[str, int], dropout: float = 0.1) -> None:
        super().__init__()
        self.backbone = backbone
        hidden = backbone.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({h: nn.Linear(hidden, n) for h, n in label_counts.items() if n})

    @property
    def layers(self) -> Any:
        return self.backbone.encoder.layer

    def lower(self, ids: torch.Tensor, mask: torch.Tensor, upto: int) -> torch.Tensor:
        """Hidden states after the embeddings and the first `upto` layers."""
        hidden = self.backbone.embeddings(input_ids=ids)
        return run_layers(self.layers[:upto], hidden, mask)

    def upper(
        self, hidden: torch.Tensor, mask: torch.Tensor, start: int
    ) -> dict[str, torch.Tensor]:
        """Logits per head from hidden states entering layer `start`."""
        hidden = run_layers(self.layers[start:], hidden, mask)
        pooled = self.dropout(mean_pool(hidden, mask))
        return {h: head(pooled) for h, head in self.heads.items()}

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.upper(self.lower(ids, mask, 0), mask, 0)


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class TransformerClassifier:
    """Inference wrapper: tokenise, run in length-sorted batches, calibrate."""

    kind = "transformer"

    def __init__(
        self,
        network: MultiTaskModel,
        tokenizer: Any,
        input_settings: InputSettings,
        labels: dict[str, list[str]],
        calibration: Calibration,
        *,
        base_model: str,
        trainable_layers: int,
        baseline: Any | None = None,
    ) -> None:
        self.network = network
        self.baseline = baseline  # a BaselineClassifier blended in by the calibration weights
        self.tokenizer = tokenizer
        self.input_settings = input_settings
        self.proposal_tokenizer = ProposalTokenizer(tokenizer, input_settings)
        self.labels = labels
        self.calibration = calibration
        self.base_model = base_model
        self.trainable_layers = trainable_layers
        self.device = pick_device()
        self.batch_size = 32

    @property
    def heads(self) -> list[str]:
        return [h for h in HEADS if h in self.labels]

    def logits(
        self, titles: Sequence[str], contents: Sequence[str], *, progress: bool = False
    ) -> dict[str, np.ndarray]:
        from tqdm.auto import tqdm

        encoded = self.proposal_tokenizer.encode_many(titles, contents)
        out = {
            h: np.zeros((len(encoded), len(self.labels[h])), dtype=np.float32)
            for h in self.network.heads
        }
        self.network.eval().to(self.device)
        batches = length_sorted_batches([len(e) for e in encoded], self.batch_size)
        with torch.inference_mode():
            for batch in tqdm(batches, desc="predicting", unit="batch", disable=not progress):
                ids, mask = pad_batch([encoded[i] for i in batch], self.proposal_tokenizer.pad_id)
                logits = self.network(ids.to(self.device), mask.to(self.device))
                for h, value in logits.items():
                    out[h][batch] = value.float().cpu().numpy()
        return out

    def predict_proba(
        self, texts: Sequence[str], *, progress: bool = False
    ) -> dict[str, np.ndarray]:
        """Calibrated probabilities per head. A text is split into title and content at its
        first newline, as `Proposal.text` joins them."""
        titles, contents = zip(*(_split_text(t) for t in texts), strict=True) if texts else ((), ())
        logits = self.logits(titles, contents, progress=progress)
        return self.blend(logits, self.baseline_scores(texts))

    def baseline_scores(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """The blended baseline's scores as logits, columns in this model's label order."""
        if self.baseline is None:
            return {}
        return baseline_logits(self.baseline, texts, self.labels)

    def blend(
        self, logits: dict[str, np.ndarray], base: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Calibrated probabilities from this model's logits and, where weighted, the baseline's."""
        probs = {}
        for head, s in logits.items():
            cal = self.calibration.heads.get(head)
            if cal is not None and cal.weights and head in base:
                z = combine([s, base[head]], cal.weights)
            else:
                z = s / (cal.temperature if cal is not None else 1.0)
            probs[head] = softmax(z) if head in SINGLE_LABEL_HEADS else sigmoid(z)
        return probs

    def quantize(self) -> TransformerClassifier:
        """Switch the linear layers to int8 dynamic quantisation for CPU inference.

        Roughly halves CPU latency; the calibration was fitted on float32 logits, so
        `benchmarks/classify.py --int8` measures what it costs in accuracy and calibration.
        """
        if self.device.type == "cpu":
            self.network = torch.ao.quantization.quantize_dynamic(
                self.network.eval(), {nn.Linear}, dtype=torch.qint8
            )
        return self

    def explain(self, text: str, head: str, label: str, top_n: int = 8) -> list[tuple[str, float]]:
        """Words that drove a suggestion, from the blended baseline (empty without one)."""
        return self.baseline.explain(text, head, label, top_n) if self.baseline is not None else []

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        trained = {
            name: p.detach().cpu().contiguous()
            for name, p in self.network.state_dict().items()
            if is_trained_weight(name, len(self.network.layers), self.trainable_layers)
        }
        save_file(trained, str(folder / WEIGHTS_FILE))
        self.tokenizer.save_pretrained(folder / TOKENIZER_DIR)
        settings = {
            "base_model": self.base_model,
            "trainable_layers": self.trainable_layers,
            "label_counts": {h: len(self.labels[h]) for h in self.network.heads},
            "input": asdict(self.input_settings),
        }
        (folder / SETTINGS_FILE).write_text(
            json.dumps(settings, ensure_ascii=False, indent=2), encoding="utf-8"
        )
        if self.baseline is not None:
            sub = folder / BASELINE_DIR
            sub.mkdir()
            self.baseline.save(sub)
            meta = {
                "labels": self.baseline.labels,
                "calibration": self.baseline.calibration.to_dict(),
            }
            (sub / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(
        cls, folder: Path, labels: dict[str, list[str]], calibration: Calibration
    ) -> TransformerClassifier:
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoTokenizer

        from model.backbone import resolve_backbone

        started = time.perf_counter()
        settings = json.loads((folder / SETTINGS_FILE).read_text(encoding="utf-8"))
        backbone = AutoModel.from_pretrained(resolve_backbone(settings["base_model"]))
        network = MultiTaskModel(backbone, settings["label_counts"])
        missing, unexpected = network.load_state_dict(
            load_file(str(folder / WEIGHTS_FILE)), strict=False
        )
        if unexpected:
            raise ValueError(
                f"{folder}: weights do not fit the base model ({len(unexpected)} unexpected tensors)"
            )
        tokenizer = AutoTokenizer.from_pretrained(folder / TOKENIZER_DIR)
        baseline = None
        if (folder / BASELINE_DIR).is_dir():
            from model.baseline import BaselineClassifier

            meta = json.loads((folder / BASELINE_DIR / "meta.json").read_text(encoding="utf-8"))
            baseline = BaselineClassifier.load(
                folder / BASELINE_DIR, meta["labels"], Calibration.from_dict(meta["calibration"])
            )
        log.info("loaded transformer bundle %s in %.1f s", folder, time.perf_counter() - started)
        return cls(
            network,
            tokenizer,
            InputSettings(**settings["input"]),
            labels,
            calibration,
            base_model=settings["base_model"],
            trainable_layers=settings["trainable_layers"],
            baseline=baseline,
        )


def baseline_logits(
    baseline: Any, texts: Sequence[str], labels: dict[str, list[str]]
) -> dict[str, np.ndarray]:
    """A baseline's calibrated probabilities as logits (log p; logit p for co-units), with
    columns reordered to `labels` (a label the baseline lacks gets a near-zero probability)."""
    probs = baseline.predict_proba(list(texts))
    out = {}
    for head, p in probs.items():
        if head not in labels:
            continue
        column = {label: i for i, label in enumerate(baseline.labels[head])}
        aligned = np.full((p.shape[0], len(labels[head])), 1e-6)
        for j, label in enumerate(labels[head]):
            if label in column:
                aligned[:, j] = p[:, column[label]]
        aligned = np.clip(aligned, 1e-6, 1 - 1e-6)
        out[head] = (
            np.log(aligned) if head in SINGLE_LABEL_HEADS else np.log(aligned / (1 - aligned))
        )
    return out


def _split_text(text: str) -> tuple[str, str]:
    title, _, content = text.partition("\n")
    return title, content


def is_trained_weight(name: str, n_layers: int, trainable_layers: int) -> bool:
    """Whether a state-dict entry was updated by training (and so belongs in the bundle)."""
    if name.startswith("heads."):
        return True
    if trainable_layers >= n_layers and not name.startswith("backbone.embeddings.word_embeddings"):
        return True
    prefix = "backbone.encoder.layer."
    if name.startswith(prefix):
        index = int(name[len(prefix) :].split(".", 1)[0])
        return index >= n_layers - trainable_layers
    return False
