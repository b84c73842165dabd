"""The built-in stroke sample: layout, reuse, refusals, and the batch command on it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from brrrr.core import load_volume
from brrrr.models.segmentation.cli import segment_app
from brrrr.models.segmentation.errors import SegmentationError
from brrrr.models.segmentation.sample import find_cases, write_stroke_sample
from brrrr.models.segmentation.synthetic import Grid, synthetic_stroke_case

SMALL = Grid((28, 34, 28), (6.0, 6.0, 6.0), "LPS")


def test_layout_and_contents(tmp_path: Path) -> None:
    sample = write_stroke_sample(tmp_path / "s", cases=2, seed=5, grid=SMALL)
    assert [c.case_id for c in sample.cases] == ["case-000", "case-001"]
    assert not sample.reused
    for index, case in enumerate(sample.cases):
        drawn = synthetic_stroke_case(
            5 + index, shape=SMALL.shape, spacing=SMALL.spacing, axcodes="LPS"
        )
        for channel in ("dwi", "adc", "flair"):
            loaded = load_volume(getattr(case, channel))
            np.testing.assert_array_equal(loaded.data, getattr(drawn, channel).data)
            np.testing.assert_allclose(loaded.affine, drawn.dwi.affine, atol=1e-5)
        assert case.mask is not None
        mask = load_volume(case.mask)
        assert mask.axcodes == "LPS"
        np.testing.assert_array_equal(mask.data, drawn.mask.data)
    manifest = json.loads((sample.root / "sample.json").read_text())
    assert manifest["synthetic"] is True
    assert [e["seed"] for e in manifest["cases"]] == [5, 6]
    assert sorted(p.name for p in sample.root.iterdir()) == ["images", "labels", "sample.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_reused_when_complete_redrawn_when_not(tmp_path: Path) -> None:
    first = write_stroke_sample(tmp_path / "s", cases=1, grid=SMALL)
    stamp = first.cases[0].dwi.stat().st_mtime_ns
    again = write_stroke_sample(tmp_path / "s", cases=1, grid=SMALL)
    assert again.reused
    assert again.cases[0].dwi.stat().st_mtime_ns == stamp
    first.cases[0].adc.unlink()  # incomplete: drawn again
    redrawn = write_stroke_sample(tmp_path / "s", cases=1, grid=SMALL)
    assert not redrawn.reused
    assert redrawn.cases[0].adc.is_file()
    other = write_stroke_sample(tmp_path / "s", cases=2, grid=SMALL)  # other settings
    assert len(other.cases) == 2


def test_refuses_a_folder_that_is_not_a_sample(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    keep = tmp_path / "mine" / "notes.txt"
    keep.write_text("mine")
    with pytest.raises(SegmentationError, match="not a stroke sample") as raised:
        write_stroke_sample(tmp_path / "mine", cases=1, grid=SMALL)
    assert raised.value.path == str(tmp_path / "mine")
    assert keep.read_text() == "mine"
    with pytest.raises(SegmentationError, match="at least one case"):
        write_stroke_sample(tmp_path / "x", cases=0, grid=SMALL)


def test_find_cases(tmp_path: Path) -> None:
    sample = write_stroke_sample(tmp_path / "s", cases=2, grid=SMALL)
    found = find_cases(sample.images_dir)
    assert [(c.case_id, c.flair is not None) for c in found] == [
        ("case-000", True),
        ("case-001", True),
    ]
    sample.cases[1].flair.unlink()  # type: ignore[union-attr]
    assert find_cases(sample.images_dir)[1].flair is None
    sample.cases[1].adc.unlink()
    with pytest.raises(SegmentationError, match="case-001 has no adc image") as raised:
        find_cases(sample.images_dir)
    assert raised.value.path == str(sample.images_dir / "case-001_adc.nii.gz")
    with pytest.raises(SegmentationError, match="no <case>_dwi"):
        find_cases(sample.labels_dir)
    with pytest.raises(SegmentationError, match="not a folder"):
        find_cases(tmp_path / "missing")


@pytest.mark.slow
def test_sample_batch_evaluate_commands(tmp_path: Path) -> None:
    """The shipped model segments the built-in sample through the commands, and scores well."""
    runner = CliRunner()
    made = runner.invoke(segment_app, ["sample", str(tmp_path / "s"), "--cases", "2"])
    assert made.exit_code == 0, made.output
    run = runner.invoke(
        segment_app, ["batch", str(tmp_path / "s" / "images"), "--out", str(tmp_path / "p")]
    )
    assert run.exit_code == 0, run.output
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == [
        "case-000.nii.gz",
        "case-001.nii.gz",
    ]
    scored = runner.invoke(
        segment_app,
        [
            "evaluate",
            str(tmp_path / "p"),
            str(tmp_path / "s" / "labels"),
            "--json",
            str(tmp_path / "m.json"),
        ],
    )
    assert scored.exit_code == 0, scored.output
    summary = json.loads((tmp_path / "m.json").read_text())
    assert summary["aggregate"]["dice"]["mean"] > 0.7, summary
