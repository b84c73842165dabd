"""Peak sources, kernels and coarsened templates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from brrrr.models.errors import ModelConfigError
from brrrr.models.training.sources import (
    coarsen_template,
    kernel_from_spec,
    load_peaks,
    select_studies,
)
from brrrr.preprocess.kernels import MKDA, Gaussian, Template


def test_coarse_voxel_centres_are_the_mean_of_the_fine_voxels_they_cover() -> None:
    affine = np.diag([-2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [90, -126, -72]
    mask = np.zeros((9, 10, 7), dtype=bool)
    mask[4, 5, 3] = True
    fine = Template(affine, (9, 10, 7), mask=mask)
    coarse = coarsen_template(fine, factor=3)
    assert coarse.shape == (3, 4, 3)
    assert coarse.zooms.tolist() == [6.0, 6.0, 6.0]
    block = np.stack(np.meshgrid(*(np.arange(3) + 3,) * 3, indexing="ij"), -1).reshape(-1, 3)
    fine_centres = block @ affine[:3, :3].T + affine[:3, 3]
    coarse_centre = coarse.affine[:3, :3] @ [1, 1, 1] + coarse.affine[:3, 3]
    np.testing.assert_allclose(coarse_centre, fine_centres.mean(axis=0))
    assert coarse.mask is not None
    assert np.argwhere(coarse.mask).tolist() == [[1, 1, 1]]
    assert coarsen_template(fine, factor=1) is fine


def test_kernel_from_spec() -> None:
    assert kernel_from_spec({"name": "mkda", "radius_mm": 8}) == MKDA(radius_mm=8)
    assert kernel_from_spec({"name": "Gaussian", "fwhm_mm": 6}) == Gaussian(fwhm_mm=6)
    with pytest.raises(ModelConfigError, match="unknown kernel"):
        kernel_from_spec({"name": "box"})
    with pytest.raises(ModelConfigError, match="bad arguments"):
        kernel_from_spec({"name": "mkda", "fwhm_mm": 6})


def test_csv_peak_table_keeps_the_study_of_each_analysis(tmp_path: Path) -> None:
    table = tmp_path / "peaks.csv"
    table.write_text(
        "id,study_id,x,y,z,year\n"
        "s1-a,s1,0,0,0,2001\ns1-a,s1,10,0,0,2001\ns1-b,s1,0,10,0,2001\ns2-a,s2,5,5,5,\n"
    )
    peaks, groups = load_peaks(table)
    assert peaks.study_ids.tolist() == ["s1-a", "s1-b", "s2-a"]
    assert groups.tolist() == ["s1", "s1", "s2"]
    assert peaks.peaks_per_study.tolist() == [2, 1, 1]
    assert np.isnan(peaks.years[2])
    assert peaks.years[0] == 2001
    with pytest.raises(ModelConfigError, match="no such peak source"):
        load_peaks(tmp_path / "missing")


def test_select_studies_keeps_whole_studies() -> None:
    groups = np.array(["a", "a", "b", "c", "c", "d"], dtype=object)
    rows = select_studies(groups, max_studies=2, seed=0)
    chosen = set(groups[rows])
    assert len(chosen) == 2
    assert all(g in chosen for g in groups if g in chosen)
    assert len(rows) == sum(g in chosen for g in groups)
    assert select_studies(groups, max_studies=None).tolist() == list(range(6))
