"""Vessel segmentation: topology metrics on shapes with known Betti numbers, and the commands
(synthetic MiniVess-layout sample → one Lightning epoch → evaluation on drifted copies)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from brrrr.models.segmentation.errors import SegmentationError
from brrrr.models.segmentation.vessels import (
    betti_errors,
    betti_numbers,
    cldice,
    dice,
    euler_characteristic,
)


def _ball(n: int = 21, r: float = 7.0, hollow: float = 0.0) -> np.ndarray:
    z, y, x = np.mgrid[:n, :n, :n] - n // 2
    d = np.sqrt(x**2 + y**2 + z**2)
    return (d <= r) & (d >= hollow)


def _torus(n: int = 31, big: float = 9.0, small: float = 3.0) -> np.ndarray:
    z, y, x = np.mgrid[:n, :n, :n] - n // 2
    q = np.sqrt(x**2 + y**2) - big
    return q**2 + z**2 <= small**2


@pytest.mark.parametrize(
    ("mask", "expected"),
    [
        (_ball(), (1, 0, 0)),
        (_ball(hollow=4.0), (1, 0, 1)),
        (_torus(), (1, 1, 0)),
        (np.concatenate([_torus(), _torus()], axis=0), (2, 2, 0)),
        (np.zeros((5, 5, 5), dtype=bool), (0, 0, 0)),
    ],
    ids=["ball", "hollow-sphere", "torus", "two-tori", "empty"],
)
def test_betti_numbers_of_known_shapes(mask: np.ndarray, expected: tuple[int, int, int]) -> None:
    assert betti_numbers(mask) == expected
    b0, b1, b2 = expected
    assert euler_characteristic(mask) == b0 - b1 + b2


def test_euler_characteristic_equals_scikit_image() -> None:
    from skimage.measure import euler_number

    rng = np.random.default_rng(0)
    for _ in range(3):
        mask = rng.random((12, 13, 11)) > 0.6
        assert euler_characteristic(mask) == euler_number(mask, connectivity=3)


def test_overlap_metrics_and_errors() -> None:
    torus = _torus()
    assert dice(torus, torus) == 1.0
    assert cldice(torus, torus) == 1.0
    assert betti_errors(torus, torus) == (0, 0)
    left = np.zeros((20, 20, 20), dtype=bool)
    left[2:6, 2:18, 8:12] = True
    right = np.zeros_like(left)
    right[14:18, 2:18, 8:12] = True
    assert cldice(left, right) == 0.0
    assert cldice(left, right) == cldice(right, left)
    empty = np.zeros_like(left)
    assert cldice(empty, empty) == 1.0
    assert cldice(left, empty) == 0.0
    # A broken tube: one component more, and the ring's loop is lost.
    ring = torus.copy()
    ring[:, 15, :16] = False
    assert betti_errors(ring, torus) == (0, 1)
    with pytest.raises(SegmentationError, match="3-D"):
        dice(np.zeros((4, 4), dtype=bool), np.zeros((4, 4), dtype=bool))
    with pytest.raises(SegmentationError):
        cldice(left, left[:-1])


@pytest.mark.slow
def test_sample_train_evaluate_with_drift(tmp_path: Path) -> None:
    from brrrr.models.cli import train_app
    from brrrr.models.segmentation.cli import segment_app

    runner = CliRunner()
    for name, seed, count in (("train", 0, 3), ("test", 100, 2)):
        made = runner.invoke(
            segment_app,
            [
                "vessels-sample",
                str(tmp_path / name),
                "--volumes",
                str(count),
                "--seed",
                str(seed),
                "--field-um",
                "48,48,40",
            ],
        )
        assert made.exit_code == 0, made.output
    assert len(list((tmp_path / "train" / "imagesTr").glob("*.nii.gz"))) == 3
    trained = runner.invoke(
        train_app,
        [
            "vessels",
            str(tmp_path / "train"),
            "--out",
            str(tmp_path / "run"),
            "--spacing-um",
            "2,2,5",
            "--patch",
            "16,16,8",
            "--max-epochs",
            "1",
            "--channels",
            "4,8",
            "--samples-per-volume",
            "2",
            "--accelerator",
            "cpu",
            "--no-progress",
        ],
    )
    assert trained.exit_code == 0, trained.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs"] == 1 or "final" in metrics
    scored = runner.invoke(
        segment_app,
        [
            "vessels-evaluate",
            str(tmp_path / "run"),
            str(tmp_path / "test"),
            "--out",
            str(tmp_path / "m.json"),
            "--drift",
            "noise",
            "--severity",
            "1.0",
        ],
    )
    assert scored.exit_code == 0, scored.output
    assert (tmp_path / "m.json").is_file()
    text = (tmp_path / "m.json").read_text()
    for name in ("dice", "cldice", "noise"):
        assert name in text
