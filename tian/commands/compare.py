"""`tian compare`: two model bundles side by side on the newest year, with drift and plots."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tian.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compare", help="compare an old and a new model on labelled data before promoting"
    )
    p.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="DIR_OR_VERSION",
        help="give twice: OLD then NEW; a bundle folder, a registry version, or 'live'",
    )
    p.add_argument("--data", required=True, nargs="+", metavar="FILE")
    p.add_argument(
        "--years",
        nargs="+",
        type=int,
        metavar="YEAR",
        help="evaluate on these years (default: the newest year in the data); "
        "earlier years are the baseline of the drift report",
    )
    p.add_argument("--out", metavar="DIR", help="write report.json and PNG plots here")
    p.add_argument(
        "--json",
        action="store_true",
        help="print the report as JSON (without the per-model reports) instead of a summary",
    )
    p.add_argument(
        "--aliases",
        default=None,
        metavar="FILE",
        help="unit alias map (default: data/unit_aliases.csv; 'none' to compare names as written)",
    )
    p.add_argument("--root", metavar="DIR", help="model registry for versions (see tian models)")
    p.set_defaults(func=run)


def resolve_model(spec: str, root: str | None) -> tuple[Path, str | None]:
    """A bundle folder as given, else a version (or 'live') in the model registry; with the
    registry's name for it (None for a folder), which ``tian models add --version`` may have
    given in place of the manifest's."""
    from model.registry import ModelRegistry, RegistryError
    from tian.commands.models import default_root

    path = Path(spec)
    if (path / "manifest.json").is_file():
        return path, None
    registry = ModelRegistry(Path(root) if root else default_root())
    try:
        entry = registry.live() if spec == "live" else registry.get(spec)
    except RegistryError as exc:
        raise UserError(f"{spec} is neither a bundle folder nor a registry version: {exc}") from exc
    if entry is None:
        raise UserError(f"no live model in {registry.root}; promote one with `tian models promote`")
    return entry.path, entry.version


def run(args: argparse.Namespace) -> int:
    if len(args.model) != 2:
        raise UserError(f"give --model exactly twice (OLD then NEW), got {len(args.model)}")
    # Every path is checked before anything slow is imported or loaded (the imports below
    # bring in torch and scikit-learn: seconds on a busy machine).
    for path in args.data:
        if not Path(path).is_file():
            raise UserError(f"{path}: no such file")
    if args.aliases and args.aliases.lower() != "none" and not Path(args.aliases).is_file():
        raise UserError(f"--aliases {args.aliases}: no such file")
    resolved = [resolve_model(m, args.root) for m in args.model]
    paths = [path for path, _ in resolved]

    from model.aliases import AliasError, load_aliases
    from model.bundle import load_classifier, write_json
    from tian.commands.common import read_inputs
    from training.compare import compare_models

    proposals = read_inputs(args.data)
    old, new = (load_classifier(p) for p in paths)
    years = sorted({p.year for p in proposals if p.year is not None})
    chosen = set(args.years) if args.years else set(years[-1:])
    test = [p for p in proposals if p.year in chosen]
    if not test:
        raise UserError(
            f"no rows for year(s) {', '.join(map(str, sorted(chosen)))} in {', '.join(args.data)}"
        )
    history = [p for p in proposals if p.year is not None and p.year < min(chosen)]
    aliases = None
    if not (args.aliases and args.aliases.lower() == "none"):
        try:
            aliases = load_aliases(args.aliases)
        except AliasError as exc:
            raise UserError(str(exc)) from exc

    report = compare_models(old, new, test, aliases=aliases, history=history)
    report["models"] = {
        name: _describe(path, version)
        for name, (path, version) in zip(("old", "new"), resolved, strict=True)
    }
    report["data"] = {"files": list(args.data), "years": sorted(chosen)}
    if args.out:
        from training.compare_plots import write_comparison_plots

        out = Path(args.out)
        report["plots"] = [str(p) for p in write_comparison_plots(report, out, proposals)]
        write_json(out / "report.json", report)
    if args.json:
        summary = {k: v for k, v in report.items() if k != "reports"}
        json.dump(summary, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        from training.compare import summary_text

        sys.stdout.write(summary_text(report))
        if args.out:
            sys.stdout.write(f"full report and plots: {Path(args.out) / 'report.json'}\n")
        else:
            sys.stdout.write("full report: add --json, or --out DIR for report.json and plots\n")
    return 0


def _describe(path: Path, version: str | None = None) -> dict:
    from model.bundle import read_manifest

    m = read_manifest(path)
    data = m.get("training_data") or {}
    return {
        "path": str(path),
        "kind": m.get("kind"),
        "version": version or m.get("version"),
        "created": m.get("created"),
        "training_years": sorted(data.get("years") or {}),
        "training_rows": data.get("rows"),
    }
