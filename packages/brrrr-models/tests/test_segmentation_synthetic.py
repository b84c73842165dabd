"""Synthetic stroke cases: deterministic from a seed, acute-stroke contrast, world-stable
anatomy on any grid, and variety across seeds."""

from __future__ import annotations

import numpy as np

from brrrr.models.segmentation import dice, label_lesions
from brrrr.models.segmentation.synthetic import (
    DEFAULT_GRID,
    Grid,
    random_grid,
    synthetic_lesion_mask,
    synthetic_stroke_case,
)

SMALL = {"shape": (42, 51, 42), "spacing": 4.0}


def test_same_seed_same_voxels_other_seed_other_case() -> None:
    a = synthetic_stroke_case(11, **SMALL)
    b = synthetic_stroke_case(11, **SMALL)
    c = synthetic_stroke_case(12, **SMALL)
    for name in ("dwi", "adc", "flair", "mask"):
        assert np.array_equal(getattr(a, name).data, getattr(b, name).data)
    assert not np.array_equal(a.dwi.data, c.dwi.data)
    assert a.dwi.data.dtype == np.float32
    assert a.mask.data.dtype == np.uint8
    assert a.dwi.shape == a.mask.shape == (42, 51, 42)
    assert np.array_equal(a.dwi.affine, a.mask.affine)


def test_lesions_are_bright_on_dwi_and_dark_on_adc() -> None:
    checked = 0
    for seed in range(12):
        case = synthetic_stroke_case(seed, **SMALL)
        lesion = case.mask.data > 0
        if lesion.sum() < 20:
            continue
        brain = (case.dwi.data > 0) & ~lesion
        # Lesion against all other brain voxels (CSF included, which is dark on DWI).
        assert np.median(case.dwi.data[lesion]) > 1.3 * np.median(case.dwi.data[brain])
        assert np.median(case.adc.data[lesion]) < 0.8 * np.median(case.adc.data[brain])
        checked += 1
    assert checked >= 6


def test_brain_extracted_and_finite() -> None:
    case = synthetic_stroke_case(3, **SMALL)
    for volume in case.inputs().values():
        assert np.isfinite(volume.data).all()
        assert (volume.data >= 0).all()
        assert volume.data[0, 0, 0] == 0  # outside the brain
    assert (case.dwi.data[case.mask.data > 0] > 0).all()


def test_same_anatomy_on_another_grid() -> None:
    """The head lives in world mm: a case drawn on a 2 mm LPS grid has the same lesion."""
    seed = next(s for s in range(20) if synthetic_stroke_case(s, **SMALL).mask.data.sum() > 50)
    coarse = synthetic_stroke_case(seed, **SMALL)
    fine_grid = Grid((84, 102, 84), 2.0, "LPS")
    fine = synthetic_lesion_mask(seed, grid=fine_grid)
    back = fine.resample(like=coarse.mask, interpolation="nearest")
    assert dice(back.data > 0, coarse.mask.data > 0) > 0.85
    # And the FLAIR drawn on its own grid is on that grid.
    case = synthetic_stroke_case(seed, **SMALL, flair_grid=fine_grid)
    assert case.flair.shape == (84, 102, 84)
    assert case.flair.axcodes == "LPS"
    assert np.array_equal(case.mask.data, coarse.mask.data)


def test_seeds_vary_count_size_and_presence() -> None:
    counts, sizes = [], []
    for seed in range(30):
        mask = synthetic_lesion_mask(seed, grid=Grid((42, 51, 42), 4.0, "RAS")).data > 0
        labels, n = label_lesions(mask)
        counts.append(n)
        sizes += [int((labels == i).sum()) for i in range(1, n + 1)]
    assert 0 in counts
    assert max(counts) >= 3
    assert min(sizes) < 10 < 200 < max(sizes)


def test_random_grids_cover_the_head() -> None:
    grids = [random_grid(s) for s in range(20)]
    assert len({g.axcodes for g in grids}) >= 4
    assert any(max(g.spacing) > 4.0 for g in grids)  # type: ignore[arg-type]
    for grid in grids[:3]:
        extent = np.abs(grid.affine()[:3, :3]) @ (np.asarray(grid.shape) - 1)
        assert (extent > [150, 185, 150]).all()
    assert DEFAULT_GRID.shape == (56, 68, 56)
