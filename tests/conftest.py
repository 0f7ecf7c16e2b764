"""Shared fixtures: everything offline, seeded and tiny."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# Characters the tiny tokenizer knows: enough Chinese for the fixtures to tokenise sensibly.
_TINY_CHARS = (
    "关于加强推进建设完善提升改善优化促进保障的建议问题措施市县区镇村街道社区"
    "工业制造企业营商环境水土保持流域生态旅游文物农业园区乡村振兴就业教育学校"
    "医疗卫生医院养老服务救助残疾人基层治理交通道路河湖治污染垃圾分类电梯小区"
    "老旧停车公交地铁学生教师课程健康疾病药品资金政策部门单位局委员会发展改革"
    "和信息化生态环境文化旅游水利农村民政人力资源社会财政住房城乡规划自然一二三"
    "年月日个是在有我们对为要了不也就与及等中大小新高多少重点工作开展落实情况"
)


@pytest.fixture(scope="session")
def tiny_backbone_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer, 32-wide BERT with a character tokenizer, saved as a model folder."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    out = tmp_path_factory.mktemp("tiny_backbone")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list(dict.fromkeys(_TINY_CHARS))
    ascii_tokens = [str(d) for d in range(10)] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = {token: i for i, token in enumerate(specials + chars + ascii_tokens)}
    tokenizer = BertTokenizerFast(vocab=vocab, tokenize_chinese_chars=True)
    tokenizer.save_pretrained(out)

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(specials) + len(chars) + len(ascii_tokens),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(out)
    return out


_TOY_THEMES = [
    # (category, main unit, co-units, words that signal the theme)
    ("工业经济", "市工业和信息化局", [], "工业 制造 企业 园区 发展 改革"),
    ("生态环境", "市生态环境局", ["市水利局"], "生态 环境 河湖 污染 水土 保持 流域"),
    ("医疗卫生", "市卫生健康委员会", [], "医疗 卫生 医院 健康 疾病 药品"),
    ("教育科技", "市教育局", [], "教育 学校 学生 教师 课程"),
]


@pytest.fixture(scope="session")
def toy_proposals() -> list:
    """Sixty labelled proposals over three years in four easy themes (seeded)."""
    import random

    from model.records import Proposal

    rng = random.Random(0)
    filler = [
        "关于",
        "加强",
        "推进",
        "建设",
        "完善",
        "提升",
        "工作",
        "开展",
        "落实",
        "情况",
        "问题",
        "措施",
    ]
    rows = []
    for i in range(60):
        category, unit, co, words = _TOY_THEMES[i % 4]
        theme = words.split()
        body = "".join(rng.choice(theme + filler) for _ in range(rng.randint(20, 60)))
        rows.append(
            Proposal(
                id=f"{2022 + i % 3}-{i:03d}",
                year=2022 + i % 3,
                title=f"关于{rng.choice(theme)}{rng.choice(theme)}的建议",
                content=body,
                category=category,
                main_unit=unit if i % 10 != 9 else None,  # some rows lack a unit
                co_units=list(co) if i % 10 != 9 else [],
            )
        )
    return rows
