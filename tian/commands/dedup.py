"""`tian dedup`: duplicate pairs, 并案 groups and evidence, or scores for given pairs."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

from tian.errors import UserError


def add_encoder_args(parser: argparse.ArgumentParser) -> None:
    """Encoder options shared by `dedup` and `topics`."""
    parser.add_argument("--model", type=Path, help="model bundle folder (its base_model)")
    parser.add_argument("--base-model", help="encoder: 'e5-small' (default) or a HF model folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def load_cli_encoder(args: argparse.Namespace) -> Any:
    """The encoder named by --base-model, else by the --model bundle's manifest."""
    base_model = args.base_model
    if args.model is not None:
        manifest_path = args.model / "manifest.json"
        if not manifest_path.is_file():
            raise UserError(f"--model {args.model}: no manifest.json (not a model bundle)")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise UserError(f"{manifest_path}: not valid JSON ({exc})") from exc
        if base_model is None:
            base_model = manifest.get("base_model")
            # A relative backbone path in a bundle is relative to the bundle.
            if (
                base_model
                and not Path(base_model).is_absolute()
                and (args.model / base_model).exists()
            ):
                base_model = str(args.model / base_model)
    from model.encoder import load_encoder

    try:
        return load_encoder(base_model)
    except ValueError as exc:
        raise UserError(str(exc)) from exc


def encode_texts(
    encoder: Any,
    ids: list[str],
    texts: list[str],
    *,
    kind: str = "passage",
    progress: bool = True,
) -> Any:
    """Vectors for texts in order; identical texts are encoded once."""
    from model.index import encode_with_cache

    return encode_with_cache(encoder, ids, texts, None, kind=kind, progress=progress)


def register(subparsers: Any) -> None:
    """Add the `dedup` subcommand."""
    from model.grouping import MIN_LINK

    p = subparsers.add_parser(
        "dedup",
        help="find duplicate proposals (within a file and against earlier years)",
        description=(
            "Find pairs of proposals about the same matter and group them into merge "
            "candidates (并案), or with --pairs score exactly the given id_a,id_b pairs. "
            "Scores are calibrated probabilities of 'same matter'."
        ),
    )
    p.add_argument("--data", required=True, type=Path, help="proposals (CSV, XLSX or JSONL)")
    p.add_argument(
        "--against",
        nargs="+",
        type=Path,
        default=[],
        metavar="FILE",
        help="earlier years' proposals to search as well",
    )
    p.add_argument("--pairs", type=Path, help="CSV with id_a,id_b: score exactly these pairs")
    p.add_argument("--out", required=True, type=Path, help="output CSV: id_a,id_b,score,kind")
    p.add_argument(
        "--groups", type=Path, help="also write groups CSV: group_id,id,is_representative"
    )
    p.add_argument("--evidence", type=Path, help="also write evidence JSONL for flagged pairs")
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help=(
            "calibrated score at which a pair is flagged (default: the scorer's own, chosen "
            "on real labelled pairs for precision 0.9; see docs/duplicate_labelling.md)"
        ),
    )
    p.add_argument(
        "--min-link",
        type=float,
        default=MIN_LINK,
        help="average-linkage floor inside a group, guards against chaining",
    )
    p.add_argument("--neighbours", type=int, default=10, help="embedding neighbours per proposal")
    p.add_argument("--calibration", type=Path, help="dedup calibration JSON (default: shipped)")
    add_encoder_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point for `tian dedup`."""

    if args.threshold is not None and not 0.0 < args.threshold < 1.0:
        raise UserError(f"--threshold must be between 0 and 1, not {args.threshold}")
    if args.neighbours < 1:
        raise UserError(f"--neighbours must be at least 1, not {args.neighbours}")
    if args.pairs is not None and args.against:
        raise UserError("--pairs scores given pairs from --data only; drop --against")

    import numpy as np

    from model.dedup import DedupCalibration, DuplicateScorer, build_pool

    data = _read(args.data)
    against = [p for f in args.against for p in _read(f)]
    everything = data + against
    _check_unique_ids(everything)

    scorer = DuplicateScorer(DedupCalibration.load(args.calibration) if args.calibration else None)
    if args.threshold is None:
        args.threshold = scorer.threshold
    given = _read_pairs(args.pairs) if args.pairs is not None else None
    if given is not None:
        known = {p.id for p in everything}
        unknown = sorted({x for pair in given for x in pair if x not in known})
        if unknown:
            shown = ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else "")
            raise UserError(f"{args.pairs}: ids not in {args.data}: {shown}")
    encoder = load_cli_encoder(args)
    # Scoring given pairs encodes only their texts; the whole file still gives the corpus
    # statistics (rarity, TF-IDF), which need no encoder.
    needed = {x for pair in given for x in pair} if given is not None else None
    rows = [i for i, p in enumerate(everything) if needed is None or p.id in needed]
    encoded = encode_texts(
        encoder,
        [everything[i].id for i in rows],
        [everything[i].text for i in rows],
        progress=not args.no_progress,
    )
    vectors = np.zeros((len(everything), encoded.shape[1]), dtype=np.float32)
    vectors[rows] = encoded
    titles = [p.title or "" for p in everything]
    contents = [p.content or "" for p in everything]
    if given is not None:
        pool = build_pool([p.id for p in everything], titles, contents, vectors, n_data=len(data))
        return _score_given_pairs(args, given, pool, scorer)
    return _search(args, everything, titles, contents, vectors, len(data), scorer, encoder)


def _read(path: Path) -> list[Any]:

    if not path.is_file():
        raise UserError(f"file not found: {path}")
    from model.records import read_proposals

    records = read_proposals(path)
    if not records:
        raise UserError(f"{path}: no proposals")
    return list(records)


def _check_unique_ids(records: list[Any]) -> None:

    seen: set[str] = set()
    clashes: list[str] = []
    for r in records:
        if r.id in seen:
            clashes.append(r.id)
        seen.add(r.id)
    if clashes:
        shown = ", ".join(sorted(set(clashes))[:10])
        raise UserError(
            f"proposal ids must be unique across --data and --against; repeated: {shown}"
        )


def _read_pairs(path: Path) -> list[tuple[str, str]]:

    if not path.is_file():
        raise UserError(f"file not found: {path}")
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        if "id_a" not in fields or "id_b" not in fields:
            raise UserError(f"{path}: needs columns id_a and id_b (found: {', '.join(fields)})")
        pairs = []
        for n, row in enumerate(reader, start=2):
            a, b = (row.get("id_a") or "").strip(), (row.get("id_b") or "").strip()
            if not a or not b:
                raise UserError(f"{path}: row {n}: empty id_a or id_b")
            pairs.append((a, b))
    return pairs


def _score_given_pairs(
    args: argparse.Namespace, pairs: list[tuple[str, str]], pool: Any, scorer: Any
) -> int:
    from model.dedup import score_pool

    position = {pid: i for i, pid in enumerate(pool.ids)}
    scored = score_pool(pool, [(position[a], position[b]) for a, b in pairs], scorer)
    _write_pairs(args.out, scored)
    print(f"scored {len(scored)} pairs -> {args.out}", file=sys.stderr)  # noqa: T201
    return 0


def _search(
    args: argparse.Namespace,
    records: list[Any],
    titles: list[str],
    contents: list[str],
    vectors: Any,
    n_data: int,
    scorer: Any,
    encoder: Any,
) -> int:
    from model.duplicates import find_duplicates

    # Earliest first: by year, then by position in the files.
    order_key = sorted(range(len(records)), key=lambda i: (records[i].year or 0, i))
    found = find_duplicates(
        [r.id for r in records],
        titles,
        contents,
        vectors,
        n_data=n_data,
        order={records[i].id: rank for rank, i in enumerate(order_key)},
        scorer=scorer,
        threshold=args.threshold,
        neighbours=args.neighbours,
        min_link=args.min_link,
    )
    _write_pairs(args.out, found.flagged)
    if args.groups:
        _write_groups(args.groups, found.groups)
    if args.evidence:
        _write_evidence(args.evidence, found.flagged, {r.id: r.text for r in records}, encoder)
    print(_groups_table(found.groups, {r.id: r.title or r.text[:30] for r in records}))  # noqa: T201
    print(  # noqa: T201
        f"{len(found.flagged)} pairs at score >= {found.threshold:.3f} -> {args.out}; "
        f"{len(found.groups)} groups",
        file=sys.stderr,
    )
    return 0


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    """Write a CSV atomically, neutralising cells a spreadsheet would run as formulas."""
    from model.atomic import atomic_write
    from model.formulas import neutralise

    def write(tmp: Path) -> None:
        with tmp.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(
                [neutralise(c) if isinstance(c, str) else c for c in row] for row in rows
            )

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, write)


def _write_pairs(path: Path, scored: list[Any]) -> None:
    rows = [[s.id_a, s.id_b, f"{s.score:.4f}", s.kind] for s in scored]
    _write_csv(path, ["id_a", "id_b", "score", "kind"], rows)


def _write_groups(path: Path, groups: list[Any]) -> None:
    rows = [[g.group_id, m, int(m == g.representative)] for g in groups for m in g.members]
    _write_csv(path, ["group_id", "id", "is_representative"], rows)


def _write_evidence(path: Path, flagged: list[Any], texts: dict[str, str], encoder: Any) -> None:
    from model.evidence import pair_evidence
    from tian.commands.common import write_jsonl

    cache: dict[str, Any] = {}  # each text's sentences are encoded once

    def records() -> Any:
        for s in flagged:
            ev = pair_evidence(texts[s.id_a], texts[s.id_b], encoder=encoder, cache=cache)
            record = {"id_a": s.id_a, "id_b": s.id_b, "score": round(s.score, 4), "kind": s.kind}
            record.update(ev)
            yield record

    write_jsonl(path, records())


def _groups_table(groups: list[Any], titles: dict[str, str]) -> str:
    if not groups:
        return "no duplicate groups"
    lines = ["并案 groups (representative first):"]
    for g in groups:
        lines.append(f"{g.group_id} ({len(g.members)})")
        for m in g.members:
            mark = "*" if m == g.representative else " "
            lines.append(f"  {mark} {m}  {titles.get(m, '')[:40]}")
    return "\n".join(lines)
