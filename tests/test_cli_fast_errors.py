"""A missing input file is reported before anything slow is imported or loaded.

Each command runs in a fresh interpreter, so that what it imported can be read from
``sys.modules``: torch, scikit-learn and the model code take seconds to import on a busy
machine, and a typo in a file name should not cost them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SLOW = ("torch", "sklearn", "transformers", "training.compare", "model.bundle", "model.encoder")
PROBE = """
import json, sys
from tian.cli import main
rc = main(json.loads(sys.argv[1]))
print(json.dumps({"rc": rc, "slow": [m for m in json.loads(sys.argv[2]) if m in sys.modules]}))
"""


@pytest.mark.parametrize(
    "args",
    [
        ["compare", "--model", "old", "--model", "new", "--data", "nope.csv"],
        ["dedup", "--data", "nope.csv", "--out", "o.csv"],
        ["dedup", "--data", "data/demo/proposals.csv", "--pairs", "nope.csv", "--out", "o.csv"],
        ["dedup", "--data", "data/demo/proposals.csv", "--against", "nope.csv", "--out", "o.csv"],
    ],
    ids=["compare", "dedup", "dedup-pairs", "dedup-against"],
)
def test_missing_file_is_named_before_slow_imports(args: list[str], tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args), json.dumps(SLOW)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["rc"] == 2, proc.stderr
    assert "nope.csv" in proc.stderr
    assert result["slow"] == [], f"imported before the check: {result['slow']}"
