"""Tests of brrrr.preprocess.pointclouds: the duplication/dropout rules, the mask, the files."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brrrr.preprocess.errors import PointCloudError
from brrrr.preprocess.kernels import PeakTable
from brrrr.preprocess.pointclouds import load_point_clouds, save_point_clouds, to_point_clouds


def _table(counts: dict[str, int], seed: int = 0) -> PeakTable:
    rng = np.random.default_rng(seed)
    labels = [study for study, n in counts.items() for _ in range(n)]
    coords = rng.uniform(-70, 70, size=(len(labels), 3)).round(1)
    return PeakTable.from_peaks(labels, coords, sample_sizes={"few": 12}, years={"few": 2004})


def test_fewer_peaks_are_repeated_cyclically():
    peaks = _table({"few": 4})
    clouds = to_point_clouds(peaks, n_points=10)
    assert clouds.points.shape == (1, 10, 3)
    assert clouds.points.dtype == np.float32
    assert clouds.source_index[0].tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    assert clouds.is_real[0].tolist() == [True] * 4 + [False] * 6
    assert np.array_equal(clouds.points[0, :4], peaks.coords_mm.astype(np.float32))
    assert np.array_equal(clouds.points[0, 4:8], clouds.points[0, :4])


def test_more_peaks_are_dropped_with_a_seed():
    peaks = _table({"many": 50, "other": 3})
    a = to_point_clouds(peaks, n_points=30, seed=7)
    b = to_point_clouds(peaks, n_points=30, seed=7)
    c = to_point_clouds(peaks, n_points=30, seed=8)
    row = peaks.row_of("many")
    assert np.array_equal(a.source_index, b.source_index)
    assert not np.array_equal(a.source_index[row], c.source_index[row])
    kept = a.source_index[row]
    assert np.all(np.diff(kept) > 0)  # distinct peaks, in table order
    assert a.is_real[row].all()
    assert a.n_dropped[row] == 20
    # A study's choice does not depend on its neighbours in the table.
    alone = to_point_clouds(peaks.select([row]), n_points=30, seed=7)
    assert np.array_equal(alone.source_index[0], kept)


def test_exact_size_is_untouched():
    peaks = _table({"exact": 30})
    clouds = to_point_clouds(peaks)
    assert clouds.source_index[0].tolist() == list(range(30))
    assert clouds.is_real.all()
    assert clouds.n_dropped.tolist() == [0]


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(1, 70), min_size=1, max_size=6),
    n_points=st.integers(1, 40),
    seed=st.integers(0, 2**31),
)
def test_every_point_is_a_real_peak(counts, n_points, seed):
    peaks = _table({f"s{i}": n for i, n in enumerate(counts)}, seed=len(counts))
    clouds = to_point_clouds(peaks, n_points=n_points, seed=seed)
    for row in range(len(peaks)):
        own = peaks.study_peaks(row).astype(np.float32)
        n = int(peaks.peaks_per_study[row])
        assert np.array_equal(clouds.points[row], own[clouds.source_index[row]])
        assert clouds.is_real[row].sum() == min(n, n_points)
        real = clouds.source_index[row][clouds.is_real[row]]
        assert len(set(real.tolist())) == real.size  # no real point is a copy


def test_save_and_load_round_trip(tmp_path: Path):
    peaks = _table({"few": 5, "many": 45, "exact": 30})
    clouds = to_point_clouds(peaks, n_points=30, seed=3)
    folder = save_point_clouds(clouds, tmp_path / "clouds")
    back = load_point_clouds(folder)
    assert isinstance(back.points, np.memmap)
    for name in ("points", "is_real", "source_index", "n_peaks"):
        assert np.array_equal(getattr(back, name), getattr(clouds, name))
    assert back.study_ids.tolist() == clouds.study_ids.tolist()
    assert back.seed == 3
    table = json.loads((folder / "studies.json").read_text())
    by_id = {r["study_id"]: r for r in table["studies"]}
    assert by_id["few"] == {
        "study_id": "few",
        "year": 2004,
        "sample_size": 12.0,
        "space": None,
        "n_peaks": 5,
        "n_dropped": 0,
    }
    assert by_id["many"]["sample_size"] is None
    assert by_id["many"]["n_dropped"] == 15
    assert np.isnan(back.sample_sizes[peaks.row_of("many")])
    assert not list(folder.glob("*.part"))


def test_bundled_studyset_becomes_clouds(tmp_path: Path):
    nimare = pytest.importorskip("nimare")
    from nimare.studyset import Studyset
    from nimare.utils import get_resource_path

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        studyset = Studyset(Path(get_resource_path()) / "nback_vs_flanker_studyset_2026-07")
    assert nimare is not None
    peaks = PeakTable.from_nimare(studyset)
    clouds = to_point_clouds(peaks)
    assert clouds.points.shape == (906, 30, 3)
    assert int(clouds.is_real.sum()) == int(np.minimum(peaks.peaks_per_study, 30).sum())
    assert int(np.isfinite(clouds.sample_sizes).sum()) == 2
    assert set(clouds.spaces.tolist()) == {"mni152_2mm"}
    back = load_point_clouds(save_point_clouds(clouds, tmp_path / "nback"))
    assert np.array_equal(back.points, clouds.points)


def test_refusals(tmp_path: Path):
    peaks = _table({"a": 3})
    with pytest.raises(PointCloudError, match="n_points"):
        to_point_clouds(peaks, n_points=0)
    empty = PeakTable(["a", "empty-study"], np.zeros((1, 3)), [0])
    with pytest.raises(PointCloudError, match="empty-study"):
        to_point_clouds(empty)
    folder = save_point_clouds(to_point_clouds(peaks), tmp_path / "c")
    np.save(folder / "is_real.npy", np.zeros((2, 30), dtype=bool))
    with pytest.raises(PointCloudError, match=r"is_real\.npy"):
        load_point_clouds(folder)
    with pytest.raises(PointCloudError, match=r"studies\.json"):
        load_point_clouds(tmp_path / "nowhere")
