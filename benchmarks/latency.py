"""Single-proposal latency and batch throughput of a bundle, float32 against int8.

    .venv/bin/python benchmarks/latency.py --model runs/demo/transformer --data data/demo/proposals.csv

Prints the median of 50 single-proposal predictions, batch throughput, and how often the int8
model's top category and unit agree with float32's (and the largest probability difference).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from model.bundle import load_classifier  # noqa: E402
from model.records import read_proposals  # noqa: E402


def measure(model, texts: list[str]) -> tuple[float, float, dict[str, np.ndarray]]:
    model.predict_proba(texts[:2])  # warm-up
    single = []
    for text in texts[:50]:
        started = time.perf_counter()
        model.predict_proba([text])
        single.append(time.perf_counter() - started)
    started = time.perf_counter()
    probs = model.predict_proba(texts)
    return 1000 * statistics.median(single), len(texts) / (time.perf_counter() - started), probs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    args = parser.parse_args()
    texts = [p.text for p in read_proposals(args.data)]
    model = load_classifier(args.model)
    fp32 = measure(model, texts)
    print(
        f"float32: single median {fp32[0]:.0f} ms, batch {fp32[1]:.1f} proposals/s ({len(texts)} texts)"
    )
    if hasattr(model, "quantize"):
        int8 = measure(model.quantize(), texts)
        print(f"int8:    single median {int8[0]:.0f} ms, batch {int8[1]:.1f} proposals/s")
        for head in fp32[2]:
            if head == "co_units":
                continue
            agree = np.mean(fp32[2][head].argmax(1) == int8[2][head].argmax(1))
            gap = np.abs(fp32[2][head] - int8[2][head]).max()
            print(
                f"  {head}: top-1 agreement {agree:.3f}, largest probability difference {gap:.3f}"
            )


if __name__ == "__main__":
    main()
