"""Deterministic stand-ins for e5 passage vectors, shared by the duplicate and topic tests."""

from __future__ import annotations

import hashlib

import numpy as np


def fake_vectors(texts: list[str], dim: int = 64) -> np.ndarray:
    """Hashed character-bigram bags: similar wording gives a high cosine, deterministically."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for row, text in enumerate(texts):
        for i in range(len(text) - 1):
            h = int(hashlib.md5(text[i : i + 2].encode()).hexdigest()[:8], 16)
            out[row, h % dim] += 1.0
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
    return out


def e5_like_vectors(texts: list[str], dim: int = 64) -> np.ndarray:
    """`fake_vectors` moved into e5's narrow band: unrelated texts near 0.9, copies near 1.

    A shared component of weight sqrt(0.89) gives cos = 0.89 + 0.11 * (bag cosine), the band
    the shipped duplicate scorer was fitted on.
    """
    bags = fake_vectors(texts, dim)
    common = np.full((len(texts), 1), np.sqrt(0.89), dtype=np.float32)
    return np.hstack([common, np.sqrt(0.11) * bags]).astype(np.float32)


class BigramEncoder:
    """`e5_like_vectors` behind the `TextEncoder` protocol, for commands that load an encoder.

    The random tiny backbone gives every pair of texts a cosine near 1, which says nothing
    about duplicates or topics; this one keeps copies near 1 and others near 0.9. ``dim`` is wide
    enough that whole proposals' bigram bags do not all collide.
    """

    name = "bigram-test"

    def __init__(self, dim: int = 1025) -> None:
        self.dim = dim

    def encode(self, texts, *, kind="passage", **_):  # type: ignore[no-untyped-def]
        return e5_like_vectors(list(texts), dim=self.dim - 1)
