"""The demo's load test runs with a few clients: no errors, latencies reported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_demo_load.py"


@pytest.mark.slow
def test_concurrent_clients_on_segment_get_no_errors(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    process = subprocess.run(
        [sys.executable, str(BENCH), "--clients", "6", "--json", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert process.returncode == 0, process.stdout + process.stderr
    figures = json.loads(out.read_text())
    assert figures["errors"] == 0
    assert figures["clients"] == 6
    assert 0 < figures["p50_s"] <= figures["p95_s"] <= figures["max_s"]
    assert "p95" in process.stdout
