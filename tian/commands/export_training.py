"""`tian export-training`: the year's reviewer-confirmed decisions as a training table.

Reads the service's database (the same settings as `tian serve`: `--db`, else `TIAN_DB_URL`,
else SQLite in `$TIAN_DATA_DIR`) and writes the reviewed proposals in the record format, with
only the labels a reviewer confirmed, ready for `tian train --data`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from tian.errors import UserError

log = logging.getLogger("tian.export_training")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export-training",
        help="write a year's reviewer-confirmed decisions as training data (CSV, XLSX or JSONL)",
    )
    p.add_argument("--year", type=int, required=True, help="proposal year to export")
    p.add_argument(
        "--out", required=True, metavar="FILE", help="output table (.csv, .xlsx or .jsonl)"
    )
    p.add_argument("--db", metavar="URL", help="database URL (default: the service's setting)")
    p.set_defaults(func=run)


def exporter() -> Any:
    """The service's export function `(session, year) -> list[Proposal]`, imported late so that
    the rest of the CLI works without the service's dependencies."""
    from service import exporter as module

    for name in ("export_training", "training_records"):
        if hasattr(module, name):
            return getattr(module, name)
    raise ImportError("service.exporter has no export_training function")


def open_session(db_url: str | None) -> Any:
    """A read-only-in-practice session on the service database; refuses a missing SQLite file
    rather than creating an empty database."""
    from sqlalchemy.engine import make_url

    from service.db import make_engine, make_session_factory
    from service.settings import Settings

    url = db_url or Settings().database_url
    parsed = make_url(url)
    if (
        parsed.get_backend_name() == "sqlite"
        and parsed.database not in (None, "", ":memory:")
        and not Path(parsed.database).is_file()
    ):
        raise UserError(
            f"no service database at {parsed.database}; import and review proposals with "
            "`tian serve` first, or pass --db"
        )
    return make_session_factory(make_engine(url))()


def run(args: argparse.Namespace) -> int:
    from model.records import write_proposals

    suffix = Path(args.out).suffix.lower()
    if suffix not in (".csv", ".xlsx", ".jsonl"):
        raise UserError(
            f"{args.out}: unsupported output type {suffix or '(none)'}; use .csv, .xlsx or .jsonl"
        )
    try:
        export = exporter()
    except ImportError as exc:
        raise UserError(f"the reviewer service is not installed here: {exc}") from exc
    with open_session(args.db) as session:
        records = list(export(session, args.year))
    if not records:
        raise UserError(f"no reviewer-confirmed proposals for year {args.year}: nothing to export")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_proposals(args.out, records)
    log.info("wrote %d reviewed proposals of %d to %s", len(records), args.year, args.out)
    saved = save_dataset(records, Path(args.out))
    if saved is not None:
        log.info("and a Hugging Face dataset (datasets.load_from_disk) at %s", saved)
    return 0


def dataset_folder(out: Path) -> Path:
    """Where the saved dataset goes: next to the table, named after it."""
    return out.with_name(f"{out.stem}_dataset")


def save_dataset(records: list, out: Path) -> Path | None:
    """Save the records as a `datasets.Dataset` next to the table (None without the `train`
    extra: the table alone is still complete)."""
    try:
        from training.data import to_dataset

        dataset = to_dataset(records)
    except ImportError:
        log.warning("the datasets library is not installed: only %s was written", out)
        return None
    folder = dataset_folder(out)
    dataset.save_to_disk(str(folder))
    return folder
