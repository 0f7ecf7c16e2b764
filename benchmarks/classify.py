"""Classification benchmark on the Teddy 2020 messages: baseline and transformer, same split.

    .venv/bin/python benchmarks/classify.py --task category [--tokenized] [--models baseline transformer]
    .venv/bin/python benchmarks/classify.py --task unit

category: train on a stratified 80% of messages_labeled.csv (optionally plus the rows of
messages_tokenized.csv that are not the same message as a labelled row, their jieba tokens
joined back without spaces), test on the other 20%.
unit: replies.csv rows with a main_unit, stratified 75/25 split.
Prints macro-F1, accuracy, top-3, ECE, training time, single-proposal latency (median of 50)
and batch throughput for each model, as one JSON object per model and a table.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from latency import measure  # noqa: E402

from model.records import Proposal, read_proposals  # noqa: E402
from training.data import stratified_split  # noqa: E402
from training.evaluate import evaluate  # noqa: E402

DATA = Path(
    os.environ.get(
        "TEDDY_DIR", Path(__file__).resolve().parents[2] / "shared" / "data" / "teddy2020"
    )
)


def load_category(tokenized: bool, seed: int) -> tuple[list[Proposal], list[Proposal]]:
    labelled = read_proposals(DATA / "messages_labeled.csv")
    train, test = stratified_split(labelled, "category", 0.2, seed)
    if tokenized:
        with open(DATA / "messages_tokenized.csv", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                if row["same_message_as"]:
                    continue  # the same message is in messages_labeled.csv: it may sit in the test part
                text = "".join(row["tokens"].split())
                train.append(
                    Proposal(id=row["id"], title="", content=text, category=row["category"])
                )
    return train, test


def load_unit(seed: int) -> tuple[list[Proposal], list[Proposal]]:
    rows = [p for p in read_proposals(DATA / "replies.csv") if p.main_unit]
    for p in rows:
        p.category = None  # replies.csv has no category; keep the unit head alone
    return stratified_split(rows, "main_unit", 0.25, seed)


def latency(model, texts: list[str]) -> dict[str, float]:
    single_ms, per_second, _ = measure(model, texts)
    return {"single_median_ms": single_ms, "batch_per_second": per_second}


def run(
    name: str, train: list[Proposal], test: list[Proposal], head: str, args: argparse.Namespace
) -> dict:
    started = time.perf_counter()
    if name == "baseline":
        from training.baseline import fit_baseline

        model = fit_baseline(train)
    else:
        from training.transformer import TransformerConfig, fit_transformer

        config = TransformerConfig(
            base_model=args.base_model,
            epochs=args.epochs,
            trainable_layers=args.trainable_layers,
            max_length=args.max_length,
            tail_tokens=args.tail_tokens,
            batch_size=args.batch_size,
        )
        model = fit_transformer(train, config)
    train_seconds = time.perf_counter() - started
    report = evaluate(model, test)["heads"][head]
    speed = latency(model, [p.text for p in test])
    if name == "transformer" and args.int8:
        model.quantize()
        q_report = evaluate(model, test)["heads"][head]
        q_speed = latency(model, [p.text for p in test])
        speed |= {
            "int8_macro_f1": q_report["macro_f1"],
            "int8_ece": q_report["ece"],
            "int8_single_median_ms": q_speed["single_median_ms"],
            "int8_batch_per_second": q_speed["batch_per_second"],
        }
    return {
        "model": name,
        "train_rows": len(train),
        "test_rows": len(test),
        "macro_f1": round(report["macro_f1"], 4),
        "accuracy": round(report["accuracy"], 4),
        "top3": round(report["top_k_accuracy"]["3"], 4),
        "ece": round(report["ece"], 4),
        "conformal_coverage": round(report["conformal"]["coverage"], 4),
        "mean_set_size": round(report["conformal"]["mean_set_size"], 2),
        "train_seconds": round(train_seconds, 1),
        **{k: round(v, 4 if "f1" in k or "ece" in k else 1) for k, v in speed.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--task", choices=["category", "unit"], default="category")
    parser.add_argument(
        "--tokenized", action="store_true", help="add messages_tokenized.csv to training"
    )
    parser.add_argument("--models", nargs="+", default=["baseline", "transformer"])
    parser.add_argument("--base-model", default="e5-small")
    parser.add_argument("--epochs", type=float, default=6.0)
    parser.add_argument("--trainable-layers", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--tail-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", help="append each model's JSON result to this file")
    parser.add_argument(
        "--int8", action="store_true", help="also measure the transformer int8-quantised"
    )
    args = parser.parse_args()

    if args.task == "category":
        train, test = load_category(args.tokenized, args.seed)
        head = "category"
    else:
        train, test = load_unit(args.seed)
        head = "main_unit"
    results = []
    for name in args.models:
        result = run(name, train, test, head, args) | {
            "task": args.task,
            "tokenized": args.tokenized,
        }
        result |= {
            k: getattr(args, k) for k in ("epochs", "trainable_layers", "max_length", "tail_tokens")
        }
        print(json.dumps(result, ensure_ascii=False), flush=True)
        if args.results:
            with open(args.results, "a", encoding="utf-8") as f:
                f.write(json.dumps(result, ensure_ascii=False) + "\n")
        results.append(result)
    print(
        f"\n{'model':<12}{'macro-F1':>9}{'acc':>7}{'top-3':>7}{'ECE':>7}{'cover':>7}{'train s':>9}{'1 ms':>8}{'batch/s':>9}"
    )
    for r in results:
        print(
            f"{r['model']:<12}{r['macro_f1']:>9.3f}{r['accuracy']:>7.3f}{r['top3']:>7.3f}{r['ece']:>7.3f}"
            f"{r['conformal_coverage']:>7.3f}{r['train_seconds']:>9.0f}{r['single_median_ms']:>8.0f}{r['batch_per_second']:>9.1f}"
        )


if __name__ == "__main__":
    main()
