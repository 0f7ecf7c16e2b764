"""Evidence: passage offsets point at the shared text; sentences align by cosine."""

from __future__ import annotations

import numpy as np
import pytest

from model.evidence import aligned_sentences, overlapping_passages, pair_evidence, split_sentences

A = "关于加装电梯的建议\n幸福小区共有十二栋楼，老人上下楼困难。建议简化审批流程，给予补贴。"
B = "各位委员：幸福小区共有十二栋楼，老人上下楼非常困难。建议简化审批流程，给予资金补贴。"


def test_passage_offsets_are_exact() -> None:
    passages = overlapping_passages(A, B, min_chars=6)
    assert passages
    for p in passages:
        assert A[p["a_start"] : p["a_end"]] == p["text"] == B[p["b_start"] : p["b_end"]]
        assert len(p["text"]) >= 6
    assert any("幸福小区共有十二栋楼" in p["text"] for p in passages)


def test_no_passages_between_unrelated_texts() -> None:
    assert overlapping_passages(A, "白河县污水管网老化，雨季直排。", min_chars=6) == []


def test_min_chars_must_be_positive() -> None:
    with pytest.raises(ValueError, match="min_chars"):
        overlapping_passages(A, B, min_chars=0)


def test_split_sentences_spans() -> None:
    spans = split_sentences(A)
    assert [A[s:e] for s, e in spans][0] == "关于加装电梯的建议"
    assert all(not A[s].isspace() for s, _ in spans)


def test_aligned_sentences_pick_best_distinct_pairs() -> None:
    spans_a, spans_b = [(0, 2), (2, 4)], [(0, 2), (2, 4)]
    va = np.array([[1, 0], [0, 1]], dtype=np.float32)
    vb = np.array([[0, 1], [1, 0]], dtype=np.float32)
    out = aligned_sentences("甲乙丙丁", "戊己庚辛", va, vb, spans_a, spans_b, top=2)
    assert [(o["a"], o["b"]) for o in out] == [("甲乙", "庚辛"), ("丙丁", "戊己")]
    assert out[0]["cosine"] == pytest.approx(1.0)


class _Encoder:
    name = "fake"
    dim = 4

    def encode(self, texts, *, kind="passage", batch_size=32, progress=False):
        vecs = np.array(
            [[len(t), t.count("幸福"), t.count("补贴"), 1.0] for t in texts], np.float32
        )
        return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def test_pair_evidence_with_encoder_has_sentences() -> None:
    ev = pair_evidence(A, B, encoder=_Encoder(), top_sentences=2)
    assert ev["passages"] and len(ev["sentences"]) == 2
    for s in ev["sentences"]:
        assert A[s["a_start"] : s["a_end"]] == s["a"]
        assert B[s["b_start"] : s["b_end"]] == s["b"]
    # Longest passage first.
    lengths = [p["a_end"] - p["a_start"] for p in ev["passages"]]
    assert lengths == sorted(lengths, reverse=True)
