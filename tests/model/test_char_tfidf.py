"""CharTfidf: the same character n-gram TF-IDF as scikit-learn's, computed with numpy."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from model.char_tfidf import CharTfidf

_TEXTS = [
    "关于加强老旧小区加装电梯的建议",
    "关于  加强学校课后服务的建议\n\n学生放学早",
    "ABC 市民反映：小区电梯经常故障！",
    "𠀀生僻字与 emoji 🙂 也要算一个字",  # code points beyond the BMP
    "",
    "电",
]


@pytest.mark.parametrize("ngram_range", [(1, 3), (2, 3), (1, 1)])
def test_same_similarities_as_scikit_learn(ngram_range: tuple[int, int]) -> None:
    ours = CharTfidf(ngram_range)
    theirs = TfidfVectorizer(analyzer="char", ngram_range=ngram_range, sublinear_tf=True)
    x, y = ours.fit_transform(_TEXTS), theirs.fit_transform(_TEXTS)
    assert x.shape == y.shape
    np.testing.assert_allclose((x @ x.T).toarray(), (y @ y.T).toarray(), atol=1e-5)
    queries = ["加装电梯的建议", "完全陌生的句子", "Abc 小区"]
    np.testing.assert_allclose(
        (ours.transform(queries) @ x.T).toarray(),
        (theirs.transform(queries) @ y.T).toarray(),
        atol=1e-5,
    )


def test_rows_are_unit_length_and_empty_text_is_a_zero_row() -> None:
    x = CharTfidf().fit_transform(_TEXTS)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    np.testing.assert_allclose(norms[[0, 1, 2, 3, 5]], 1.0, atol=1e-5)
    assert norms[4] == 0.0


def test_bad_settings_and_unfitted_use() -> None:
    with pytest.raises(ValueError, match="ngram_range"):
        CharTfidf((1, 4))
    with pytest.raises(RuntimeError, match="not fitted"):
        CharTfidf().transform(["a"])
    assert CharTfidf().fit_transform([""]).shape == (1, 0)
    assert CharTfidf().fit_transform([]).shape == (0, 0)
