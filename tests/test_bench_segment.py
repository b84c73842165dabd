"""The end-to-end segmentation benchmark runs in its quick form, and brrrr's masks equal MONAI's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_segment.py"


@pytest.mark.slow
def test_quick_benchmark_writes_ratios_and_agreeing_masks(tmp_path: Path) -> None:
    out = tmp_path / "bench_segment.json"
    process = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert process.returncode == 0, process.stderr
    assert "min Dice" in process.stdout
    figures = json.loads(out.read_text())
    assert figures["dice_ok"] is True
    assert figures["min_dice"] >= 0.999
    assert len(figures["cases"]) == 1
    for row in figures["cases"]:
        assert set(row["dice_vs_brrrr"]) == {
            "monai_sw1",
            f"monai_sw{figures['model']['brrrr_batch_size']}",
        }
        assert all(d >= 0.999 for d in row["dice_vs_brrrr"].values())
    assert set(figures["ratios"]) >= {"monai_sw1_over_brrrr", "monai_swbatch_over_brrrr"}
    assert all(r > 0 for r in figures["ratios"].values())
    assert figures["model"]["model_grid"]["shape"] == [57, 69, 57]
    assert figures["machine"]["torch_threads"] >= 1
    assert {"cpu_count", "torch", "monai"} <= set(figures["machine"])
