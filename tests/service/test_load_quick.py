"""A few seconds of the loopback load test (benchmarks/service_load.py): no errors, nothing lost."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from service_helpers import TOY_ROWS, proposals_csv

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "service_load.py"


def test_short_load_run_has_no_errors_and_loses_nothing(tmp_path, baseline_bundle):
    spec = importlib.util.spec_from_file_location("service_load", SCRIPT)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    data = tmp_path / "p.csv"
    data.write_bytes(proposals_csv(TOY_ROWS))
    result = bench.run(
        duration=3.0, clients=4, model=baseline_bundle, data=data, encoder="none", import_rows=5
    )
    assert result["errors"] == 0, result["error_samples"]
    assert result["suggest_requests"] > 0 and result["imports_accepted"] > 0
    assert result["nothing_lost"], result
