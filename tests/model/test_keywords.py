"""依据词: whole jieba words and phrases, never character fragments."""

from __future__ import annotations

from model.keywords import whole_words

TEXT = "关于解决老旧小区停车难问题的建议。东城区停车位严重不足，加强城市管理。"


def test_fragments_are_dropped_and_bigrams_joined() -> None:
    terms = [
        ("区停", 1.0),  # character n-gram across two words
        ("强城", 0.9),
        ("登", 0.8),  # single characters read as fragments
        ("东城区", 0.7),
        ("老旧 小区", 0.6),  # the vectoriser's word bigram
        ("小区", 0.5),  # repeats a kept phrase
        ("的 建议", 0.4),  # a function word makes a fragment
        ("城市管理", 0.3),  # a phrase stored joined earlier stays a phrase
    ]
    assert whole_words(TEXT, terms) == [("东城区", 0.7), ("老旧小区", 0.6), ("城市管理", 0.3)]
    assert whole_words(TEXT, terms, top_n=1) == [("东城区", 0.7)]


def test_explanations_stored_by_the_service_are_whole_words() -> None:
    from service.analysis import explanation
    from service.registry_runtime import LiveModel

    class Fragments:
        def explain(self, text: str, head: str, label: str, top_n: int) -> list:
            return [("区停", 2.0), ("停车位", 1.5), ("强城", 1.0), ("严重不足", 0.5)][:top_n]

    live = LiveModel("v", "baseline", None, {}, classifier=None, explainer=Fragments())  # type: ignore[arg-type]
    payload = {"category": [{"label": "城乡建设", "score": 0.9}]}
    assert explanation(live, TEXT, payload) == {
        "category": [{"word": "停车位", "weight": 1.5}, {"word": "严重不足", "weight": 0.5}]
    }
