import numpy as np
import pytest
import torch

from model.bundle import load_classifier, save_bundle
from model.transformer import InputSettings, ProposalTokenizer, run_layers
from training.transformer import TransformerConfig, _loss, _Targets, fit_transformer


@pytest.fixture
def tiny_config(tiny_backbone_dir):
    return TransformerConfig(
        base_model=str(tiny_backbone_dir),
        max_length=48,
        tail_tokens=8,
        trainable_layers=1,
        epochs=8,
        batch_size=8,
        lr=1e-3,
        head_lr=1e-2,
        calibration_fraction=0.25,
    )


def test_layer_by_layer_run_matches_the_model(tiny_backbone_dir):
    from transformers import AutoModel

    model = AutoModel.from_pretrained(tiny_backbone_dir, add_pooling_layer=False).eval()
    ids = torch.tensor([[2, 10, 11, 12, 3, 0], [2, 20, 21, 3, 0, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask).last_hidden_state
        got = run_layers(model.encoder.layer, model.embeddings(input_ids=ids), mask)
    assert torch.allclose(got[mask.bool()], expected[mask.bool()], atol=1e-5)


def test_head_and_tail_truncation_keeps_title_and_end(tiny_backbone_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_backbone_dir)
    plain = ProposalTokenizer(tok, InputSettings(max_length=20, tail_tokens=0))
    headtail = ProposalTokenizer(tok, InputSettings(max_length=20, tail_tokens=5))
    content = "工" * 40 + "卫生健康药"
    ids = headtail.encode("教育", content)
    assert len(ids) == 20 == len(plain.encode("教育", content))
    end = tok.convert_ids_to_tokens(ids[-6:-1])
    assert "".join(end) == "卫生健康药"
    assert "药" not in tok.convert_ids_to_tokens(plain.encode("教育", content))
    assert tok.convert_ids_to_tokens(ids[1:3]) == ["教", "育"]


def test_missing_labels_are_masked_in_the_loss(toy_proposals):
    labels = {
        "category": ["医疗卫生", "工业经济", "教育科技", "生态环境"],
        "main_unit": ["市教育局", "市工业和信息化局"],
    }
    rows = [toy_proposals[9], toy_proposals[19]]  # both lack main_unit
    targets = _Targets(rows, labels)
    assert targets.single["main_unit"].tolist() == [-100, -100]
    logits = {
        "category": torch.zeros(2, 4, requires_grad=True),
        "main_unit": torch.randn(2, 2, requires_grad=True),
    }
    loss = _loss(logits, targets, [0, 1], torch.device("cpu"))
    loss.backward()
    assert torch.isfinite(loss)
    grad = logits["main_unit"].grad
    assert grad is None or bool((grad == 0).all())  # no signal from absent labels
    assert logits["category"].grad.abs().sum() > 0


def test_fit_save_load_predict_with_a_tiny_model(toy_proposals, tiny_config, tmp_path):
    model = fit_transformer(toy_proposals, tiny_config)
    assert set(model.heads) == {"category", "main_unit", "co_units"}
    cal = model.calibration.heads["category"]
    assert cal.calibration_rows > 0 and cal.temperature > 0
    texts = [p.text for p in toy_proposals[:12]]
    probs = model.predict_proba(texts)
    np.testing.assert_allclose(probs["category"].sum(axis=1), 1, atol=1e-5)
    accuracy = np.mean(
        [
            model.labels["category"][i] == p.category
            for i, p in zip(probs["category"].argmax(1), toy_proposals[:12], strict=True)
        ]
    )
    assert accuracy >= 0.75  # four easy themes: a tiny model must learn them

    folder = save_bundle(model, tmp_path / "bundle", {"version": "t"})
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    assert size < 5_000_000  # only the trained top layer and heads are stored
    again = load_classifier(folder)
    np.testing.assert_allclose(again.predict_proba(texts)["category"], probs["category"], atol=1e-5)


def test_steps_scale_with_rows_without_a_floor(toy_proposals, tiny_config, caplog):
    import logging
    from dataclasses import replace

    from training.transformer import _labels, prepare_rows, train_on

    config = replace(tiny_config, epochs=1, batch_size=8)
    rows = toy_proposals[:16]
    prepared = prepare_rows(rows, _labels(rows), config)
    with caplog.at_level(logging.INFO, logger="training.transformer"):
        train_on(prepared, list(range(16)), config)
    assert "trained 2 steps" in caplog.text  # 16 rows / 8 per batch, one epoch; no 200 floor
