"""Tests of brrrr.preprocess.kernels: NiMARE equality on NiMARE's own data, landmarks, cache."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from brrrr.core import Volume, load_volume
from brrrr.preprocess.errors import CoordinateError, KernelError, MapCacheError
from brrrr.preprocess.kernels import (
    ALE,
    KDA,
    MKDA,
    Gaussian,
    MapCache,
    PeakTable,
    Template,
    ale_fwhm_mm,
    deduplicate_peaks,
    iter_maps,
    peaks_to_maps,
)

nimare = pytest.importorskip("nimare")

TOLERANCE = 1e-5
SUBSET = 60  # analyses of the bundled studyset compared in full (every 15th id)


def _nimare_root() -> Path:
    from nimare.utils import get_resource_path

    return Path(get_resource_path())


@pytest.fixture(scope="module")
def studyset():
    from nimare.studyset import Studyset

    full = Studyset(_nimare_root() / "nback_vs_flanker_studyset_2026-07")
    assert len(full.ids) == 906
    return full


@pytest.fixture(scope="module")
def subset(studyset):
    ids = sorted(studyset.ids)[:: len(studyset.ids) // SUBSET][:SUBSET]
    return studyset.slice(ids)


@pytest.fixture(scope="module")
def brain() -> Template:
    return Template.mni152(mask="brain")


def _nimare_maps(kernel, collection) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return kernel.transform(collection, return_type="array")


def _ours(collection, kernel, template) -> np.ndarray:
    peaks = PeakTable.from_nimare(collection)
    expected_order = np.unique(collection.coordinates["id"].astype(str).to_numpy())
    assert peaks.study_ids.tolist() == expected_order.tolist()
    return peaks_to_maps(peaks, kernel=kernel, template=template).numpy()


def _assert_equal_per_study(ours: np.ndarray, theirs: np.ndarray) -> None:
    assert ours.shape == theirs.shape
    per_study = np.abs(ours - theirs).max(axis=1)
    assert per_study.max() <= TOLERANCE, f"studies differ: {np.flatnonzero(per_study > 0)}"
    assert (ours > 0).sum() > 0


# -- NiMARE equality -------------------------------------------------------------------------
NIMARE_PAIRS = {
    "mkda-r10": (lambda k: k.MKDAKernel(r=10), MKDA(radius_mm=10)),
    "mkda-r6-v2.5": (lambda k: k.MKDAKernel(r=6, value=2.5), MKDA(radius_mm=6, value=2.5)),
    "kda-r10": (lambda k: k.KDAKernel(r=10), KDA(radius_mm=10)),
    "kda-r8-v0.5": (lambda k: k.KDAKernel(r=8, value=0.5), KDA(radius_mm=8, value=0.5)),
    "ale-fwhm10": (lambda k: k.ALEKernel(fwhm=10), ALE(fwhm_mm=10)),
    "ale-fwhm12.3": (lambda k: k.ALEKernel(fwhm=12.3), ALE(fwhm_mm=12.3)),
    "ale-n20": (lambda k: k.ALEKernel(sample_size=20), ALE(sample_size=20)),
}


@pytest.mark.parametrize("name", sorted(NIMARE_PAIRS))
def test_equals_nimare_on_bundled_studyset(subset, brain, name):
    from nimare.meta import kernel as nk

    make_theirs, ours = NIMARE_PAIRS[name]
    _assert_equal_per_study(_ours(subset, ours, brain), _nimare_maps(make_theirs(nk), subset))


def test_ale_per_study_sample_size_equals_nimare_on_studyset(studyset, brain):
    from nimare.meta.kernel import ALEKernel

    sizes = studyset.sample_sizes()
    known = [i for i, n in zip(studyset.ids, sizes, strict=True) if np.isfinite(n)]
    assert len(known) == 2
    part = studyset.slice(known)
    _assert_equal_per_study(_ours(part, ALE(), brain), _nimare_maps(ALEKernel(), part))


@pytest.mark.parametrize(
    "filename",
    [
        "nidm_pain_dset.json",
        "test_pain_dataset.json",
        # The two largest sets take 10-20 s each: CI's full suite runs them.
        pytest.param("test_pain_dataset_multiple_contrasts.json", marks=pytest.mark.slow),
        pytest.param("neurosynth_dset.json", marks=pytest.mark.slow),
    ],
)
def test_equals_nimare_on_test_datasets(filename):
    from nimare.dataset import Dataset
    from nimare.meta.kernel import ALEKernel, KDAKernel, MKDAKernel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = Dataset(str(_nimare_root().parent / "tests" / "data" / filename))
    mask = dataset.masker.mask_img
    template = Template.from_volume(
        Volume(np.asanyarray(mask.dataobj), mask.affine), zooms=mask.header.get_zooms()
    )
    has_sizes = bool(np.isfinite(PeakTable.from_nimare(dataset).sample_sizes).all())
    pairs = [(MKDAKernel(r=10), MKDA()), (KDAKernel(r=10), KDA())]
    pairs.append((ALEKernel(), ALE()) if has_sizes else (ALEKernel(fwhm=8), ALE(fwhm_mm=8)))
    for theirs, ours in pairs:
        _assert_equal_per_study(_ours(dataset, ours, template), _nimare_maps(theirs, dataset))


def test_voxel_rounding_equals_nimare_mm2vox(studyset, brain):
    from nimare.utils import mm2vox

    xyz = studyset.coordinates[["x", "y", "z"]].to_numpy(dtype=float)
    assert np.array_equal(brain.to_voxels(xyz), mm2vox(xyz, brain.affine))
    half = np.array([[1.0, 1.0, 1.0], [3.0, -1.0, 5.0]])  # exact half voxels on a 2 mm grid
    assert np.array_equal(brain.to_voxels(half), mm2vox(half, brain.affine))


# -- landmarks -------------------------------------------------------------------------------
@pytest.mark.parametrize("mask", ["brain", "ale", "none"])
def test_mni_origin_lands_where_nibabel_says(mask):
    template = Template.mni152(mask=mask)
    expected = np.round(nib.affines.apply_affine(np.linalg.inv(template.affine), [0, 0, 0]))
    assert template.to_voxels([[0.0, 0.0, 0.0]]).tolist() == [expected.astype(int).tolist()]
    assert template.to_voxels([[0.0, 0.0, 0.0]]).tolist() == [[45, 63, 36]]
    assert template.shape == (91, 109, 91)


def test_ale_template_has_a_negative_x_step():
    template = Template.mni152(mask="ale")
    assert template.affine[0, 0] == -2.0
    assert load_volume(template.name).affine[0, 0] == -2.0
    # Leftmost world x is the last i on this grid, the first on the TemplateFlow grid.
    assert template.to_voxels([[-90.0, 0, 0], [90.0, 0, 0]])[:, 0].tolist() == [90, 0]
    assert Template.mni152(mask="brain").to_voxels([[-90.0, 0, 0]])[0, 0] == 0


@pytest.mark.parametrize("mask", ["brain", "ale"])
def test_axis_ends(mask):
    template = Template.mni152(mask=mask)
    ends = (
        template.affine @ np.array([[0, 0, 0, 1], [90, 108, 90, 1]], dtype=float).T
    )  # world mm of the two corner voxels
    corners = template.to_voxels(ends[:3].T)
    assert corners.tolist() == [[0, 0, 0], [90, 108, 90]]
    # One voxel beyond an end is outside the grid, but its sphere still reaches inside.
    beyond = template.affine @ np.array([-1, 54, 45, 1.0])
    peaks = PeakTable.from_peaks(["edge"], beyond[None, :3])
    whole = Template(template.affine, template.shape)
    grid = peaks_to_maps(peaks, kernel=MKDA(radius_mm=6), template=whole, layout="grid")[0]
    grid = grid.numpy()
    touched = np.argwhere(grid > 0)
    assert touched.size
    assert touched[:, 0].max() == 2
    assert touched[:, 0].min() == 0


@pytest.mark.parametrize("mask", ["brain", "ale"])
def test_left_stays_left(mask):
    template = Template.mni152(mask=mask)
    peaks = PeakTable.from_peaks(["left"], np.array([[-40.0, -20.0, 50.0]]))
    grid = peaks_to_maps(peaks, kernel=Gaussian(fwhm_mm=6), template=template, layout="grid")
    voxel = np.unravel_index(int(torch.argmax(grid[0])), template.shape)
    world = nib.affines.apply_affine(template.affine, voxel)
    assert world.tolist() == [-40.0, -20.0, 50.0]
    weights = grid[0].numpy()
    ijk = np.argwhere(weights > 0)
    centroid = nib.affines.apply_affine(template.affine, ijk).T @ weights[weights > 0]
    assert centroid[0] / weights.sum() < -30  # the left hemisphere


# -- kernels ---------------------------------------------------------------------------------
def test_gaussian_fwhm_and_normalisation(brain):
    peaks = PeakTable.from_peaks(["s"], np.array([[0.0, 0.0, 0.0]]))
    grid = peaks_to_maps(peaks, kernel=Gaussian(fwhm_mm=6), template=brain, layout="grid")[0]
    i, j, k = 45, 63, 36
    assert grid[i, j, k] == 1.0
    # A 2 mm step on a 6 mm FWHM: exp(-4 ln2 (2/6)^2) = 2 ** (-4/9).
    assert grid[i + 1, j, k].item() == pytest.approx(2 ** (-4 / 9), rel=1e-6)
    assert grid[i, j - 1, k].item() == pytest.approx(2 ** (-4 / 9), rel=1e-6)
    summed = peaks_to_maps(
        peaks, kernel=Gaussian(fwhm_mm=12, normalize="sum"), template=Template.mni152(mask="none")
    )
    assert summed.sum().item() == pytest.approx(1.0, rel=1e-5)


def test_ale_fwhm_formula():
    assert ale_fwhm_mm(20) == pytest.approx(9.2412, abs=1e-4)
    assert ale_fwhm_mm(1e9) == pytest.approx(
        5.7 / (2 * np.sqrt(2 / np.pi)) * np.sqrt(8 * np.log(2))
    )


def test_ale_refuses_unknown_sample_sizes(brain, caplog):
    peaks = PeakTable.from_peaks(
        ["known", "unknown"], np.array([[0.0, 0, 0], [10.0, 10, 10]]), sample_sizes={"known": 20}
    )
    with pytest.raises(KernelError, match="unknown"):
        peaks_to_maps(peaks, kernel=ALE(), template=brain)
    with caplog.at_level(logging.WARNING, logger="brrrr.preprocess.kernels"):
        maps = peaks_to_maps(peaks, kernel=ALE(fwhm_if_unknown_mm=9.0), template=brain)
    assert "unknown" in caplog.text
    assert "9 mm" in caplog.text
    fixed = peaks_to_maps(peaks, kernel=ALE(fwhm_mm=9.0), template=brain)
    by_size = peaks_to_maps(peaks, kernel=ALE(sample_size=20), template=brain)
    assert torch.equal(maps[1], fixed[1])
    assert torch.equal(maps[0], by_size[0])
    with pytest.raises(KernelError):
        ALE(fwhm_mm=8, sample_size=20)


def test_layouts_outputs_and_dtypes_agree(subset, brain):
    peaks = PeakTable.from_nimare(subset)
    dense = peaks_to_maps(peaks, kernel=MKDA(), template=brain)
    grid = peaks_to_maps(peaks, kernel=MKDA(), template=brain, layout="grid")
    assert np.array_equal(brain.unmask(dense.numpy()), grid.numpy())
    sparse = peaks_to_maps(peaks, kernel=MKDA(), template=brain, output="sparse", batch_size=7)
    assert np.array_equal(sparse.toarray(), dense.numpy())
    as_bytes = peaks_to_maps(peaks, kernel=MKDA(), template=brain, dtype="uint8")
    assert as_bytes.dtype == torch.uint8
    assert torch.equal(as_bytes.float(), dense)
    counts = peaks_to_maps(peaks, kernel=KDA(), template=brain, dtype="uint8")
    assert torch.equal(counts.float(), peaks_to_maps(peaks, kernel=KDA(), template=brain))
    batches = list(iter_maps(peaks, kernel=ALE(fwhm_mm=10), template=brain, batch_size=16))
    assert [b.start for b in batches] == list(range(0, len(peaks), 16))
    joined = torch.cat([b.maps for b in batches])
    assert torch.equal(joined, peaks_to_maps(peaks, kernel=ALE(fwhm_mm=10), template=brain))
    with pytest.raises(KernelError, match="uint8"):
        peaks_to_maps(peaks, kernel=ALE(fwhm_mm=10), template=brain, dtype="uint8")


@pytest.mark.parametrize(
    "kernel",
    [
        MKDA(),
        MKDA(radius_mm=6, value=2.5),
        KDA(radius_mm=8, value=0.5),
        ALE(fwhm_mm=10),
        Gaussian(),
    ],
    ids=["mkda", "mkda-v2.5", "kda-v0.5", "ale", "gaussian"],
)
@pytest.mark.parametrize("threads", [1, 3])
def test_sparse_equals_dense(subset, brain, kernel, threads, monkeypatch):
    """CSR output built study by study equals the dense maps: sorted, no explicit zeros."""
    from brrrr.preprocess.kernels import _apply

    peaks = PeakTable.from_nimare(subset)
    before = torch.get_num_threads()
    monkeypatch.setattr(_apply, "_SPARSE_BLOCK_ENTRIES", 50_000)  # several blocks
    try:
        torch.set_num_threads(threads)
        sparse = peaks_to_maps(peaks, kernel=kernel, template=brain, output="sparse")
        dense = peaks_to_maps(peaks, kernel=kernel, template=brain).numpy()
        grid = peaks_to_maps(peaks, kernel=kernel, template=brain, layout="grid", output="sparse")
    finally:
        torch.set_num_threads(before)
    assert sparse.has_sorted_indices
    assert np.all(sparse.data != 0)
    assert sparse.nnz == np.count_nonzero(dense)
    assert np.array_equal(sparse.toarray(), dense)
    assert np.array_equal(grid.toarray().reshape(len(peaks), *brain.shape), brain.unmask(dense))


@pytest.mark.slow
def test_sparse_per_study_ale_and_uint8(studyset, brain):
    """Several stencil groups (one per sample size) and uint8 counts, sparse vs dense."""
    peaks = PeakTable.from_nimare(studyset)
    kernel = ALE(fwhm_if_unknown_mm=9.0)
    sparse = peaks_to_maps(peaks, kernel=kernel, template=brain, output="sparse")
    assert np.array_equal(sparse.toarray(), peaks_to_maps(peaks, kernel=kernel, template=brain))
    counts = peaks_to_maps(peaks, kernel=KDA(), template=brain, output="sparse", dtype="uint8")
    assert counts.dtype == np.uint8
    dense = peaks_to_maps(peaks, kernel=KDA(), template=brain, dtype="uint8").numpy()
    assert np.array_equal(counts.toarray(), dense)


@pytest.mark.slow
@pytest.mark.parametrize("kernel", [MKDA(), KDA(), ALE(fwhm_mm=10)], ids=["mkda", "kda", "ale"])
def test_torch_path_equals_compiled_path(subset, brain, kernel):
    """The torch scatter path CUDA uses, run on CPU tensors, equals the compiled CPU loops."""
    import dataclasses

    from brrrr.preprocess.kernels import _apply

    peaks = PeakTable.from_nimare(subset)
    for layout in ("masked", "grid"):
        plan = _apply._plan(peaks, kernel, brain, layout=layout, dtype="float32", device="cpu")
        torch_plan = dataclasses.replace(plan, cpu=None)
        maps = []
        for p in (plan, torch_plan):
            storage = _apply._allocate(p, len(peaks))
            _apply._render(p, storage, 0, len(peaks), None)
            maps.append(storage[1:])
        assert torch.equal(maps[0], maps[1])
        sparse = _apply._sparse(torch_plan, len(peaks), 7, None)
        assert np.array_equal(sparse.toarray().reshape(-1), maps[0].numpy())


def test_thread_split_changes_nothing(subset, brain):
    peaks = PeakTable.from_nimare(subset)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = peaks_to_maps(peaks, kernel=ALE(fwhm_mm=12), template=brain)
        torch.set_num_threads(3)
        three = peaks_to_maps(peaks, kernel=ALE(fwhm_mm=12), template=brain)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, three)


def test_kda_uint8_overflow_is_refused(brain):
    many = np.zeros((300, 3))
    peaks = PeakTable.from_peaks(["crowded"] * 300, many)
    with pytest.raises(KernelError, match="crowded"):
        peaks_to_maps(peaks, kernel=KDA(), template=brain, dtype="uint8")


@pytest.mark.gpu
def test_cuda_equals_cpu(subset, brain):
    peaks = PeakTable.from_nimare(subset)
    for kernel in (MKDA(), KDA(), ALE(fwhm_mm=10)):
        cpu = peaks_to_maps(peaks, kernel=kernel, template=brain)
        cuda = peaks_to_maps(peaks, kernel=kernel, template=brain, device="cuda")
        assert torch.equal(cuda.cpu(), cpu)


def _brute_force(coords, template, radius_mm, combine):
    """Sphere maps from first principles: voxel centres within r of the rounded peak."""
    ijk = template.to_voxels(coords)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in template.shape], indexing="ij"), -1)
    out = np.zeros(template.shape)
    for peak in ijk:
        inside = np.sqrt((((grid - peak) * template.zooms.astype(float)) ** 2).sum(-1)) <= radius_mm
        out = np.maximum(out, inside) if combine == "max" else out + inside
    return out * template.mask


@settings(max_examples=25, deadline=None)
@given(
    coords=st.lists(
        st.tuples(*[st.floats(-14.0, 14.0, allow_nan=False, allow_subnormal=False)] * 3),
        min_size=1,
        max_size=6,
    ),
    radius=st.sampled_from([2.0, 3.0, 4.5]),
)
def test_spheres_match_brute_force(coords, radius):
    rng = np.random.default_rng(len(coords))
    affine = np.array([[-2.0, 0, 0, 10], [0, 2, 0, -12], [0, 0, 3, -9], [0, 0, 0, 1]])
    template = Template(affine, (11, 12, 7), mask=rng.random((11, 12, 7)) > 0.3)
    xyz = np.array(coords)
    peaks = PeakTable.from_peaks(["s"] * len(xyz), xyz)
    for kernel, combine in ((MKDA(radius_mm=radius), "max"), (KDA(radius_mm=radius), "sum")):
        grid = peaks_to_maps(peaks, kernel=kernel, template=template, layout="grid")[0].numpy()
        assert np.array_equal(grid, _brute_force(xyz, template, radius, combine))


# -- peak tables and deduplication ------------------------------------------------------------
def test_non_finite_coordinates_name_the_study():
    with pytest.raises(CoordinateError, match="bad-study"):
        PeakTable.from_peaks(["ok", "bad-study"], np.array([[0.0, 0, 0], [np.nan, 0, 0]]))


def test_deduplication_on_recorded_fields_only(studyset, brain):
    peaks = PeakTable.from_nimare(studyset)
    frame = studyset.coordinates
    expected = int(frame.duplicated(["id", "x", "y", "z"]).sum())
    clean, report = deduplicate_peaks(peaks)
    assert report.n_removed == expected > 0
    assert clean.n_peaks == peaks.n_peaks - expected
    assert sum(report.removed_per_study.values()) == expected
    assert json.loads(json.dumps(report.to_dict()))["n_removed"] == expected
    study = next(iter(report.removed_per_study))
    both = peaks.select([peaks.row_of(study)])
    once = clean.select([clean.row_of(study)])
    kwargs = {"template": brain}
    assert torch.equal(
        peaks_to_maps(both, kernel=MKDA(), **kwargs), peaks_to_maps(once, kernel=MKDA(), **kwargs)
    )
    assert not torch.equal(
        peaks_to_maps(both, kernel=KDA(), **kwargs), peaks_to_maps(once, kernel=KDA(), **kwargs)
    )
    with pytest.raises(CoordinateError, match="peak ids"):
        deduplicate_peaks(peaks, key="peak_id")


def test_deduplication_by_table_and_peak_ids():
    xyz = np.array([[0.0, 0, 0], [0.0, 0, 0], [0.0, 0, 0], [1.0, 0, 0]])
    peaks = PeakTable.from_peaks(
        ["a", "a", "b", "a"], xyz, table_ids=["t1", "t2", "t1", "t1"], peak_ids=[1, 1, 1, 2]
    )
    assert deduplicate_peaks(peaks)[1].removed_per_study == {"a": 1}
    assert deduplicate_peaks(peaks, key="table+coordinates")[1].n_removed == 0
    assert deduplicate_peaks(peaks, key="peak_id")[1].removed_per_study == {"a": 1}


# -- cache -----------------------------------------------------------------------------------
def test_cache_is_content_addressed_and_memory_mapped(subset, brain, tmp_path):
    peaks = PeakTable.from_nimare(subset).select(range(12))
    cache = MapCache(tmp_path / "cache")
    kernel = ALE(fwhm_mm=10)
    with pytest.raises(MapCacheError, match="not cached"):
        cache.lookup(peaks, kernel=kernel, template=brain)
    maps = cache.build(peaks, kernel=kernel, template=brain, shard_size=5, progress=False)
    expected = peaks_to_maps(peaks, kernel=kernel, template=brain).numpy()
    assert isinstance(maps[3], np.memmap)
    assert not maps[3].flags.writeable
    assert np.array_equal(maps.stack(), expected)
    shards = sorted((tmp_path / "cache" / "shards").glob("*.npy"))
    assert len(shards) == 3
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert len(manifest["entries"]) == 12
    # Same content again, and under new names: nothing is recomputed.
    renamed = PeakTable(
        [f"renamed-{s}" for s in peaks.study_ids], peaks.coords_mm, peaks.study_index
    )
    again = cache.build(renamed, kernel=kernel, template=brain, progress=False)
    assert sorted((tmp_path / "cache" / "shards").glob("*.npy")) == shards
    assert again.keys == maps.keys
    assert np.array_equal(cache.lookup(peaks, kernel=kernel, template=brain).stack(), expected)
    # Other settings are other keys.
    other = cache.keys_for(peaks, kernel=ALE(fwhm_mm=11), template=brain)
    assert not set(other) & set(maps.keys)


def test_cache_rejects_a_foreign_manifest(tmp_path, brain):
    (tmp_path / "manifest.json").write_text('{"format": "something else"}')
    peaks = PeakTable.from_peaks(["s"], np.zeros((1, 3)))
    with pytest.raises(MapCacheError, match="manifest"):
        MapCache(tmp_path).build(peaks, kernel=MKDA(), template=brain, progress=False)


def test_row_table_holds_every_kept_position_once() -> None:
    # Gaps, a row with no kept position, several intervals on a row, and a jump in the
    # columns inside a run of kept positions (two intervals): expanding the table must give
    # the lookup back.
    from brrrr.preprocess.kernels._stamp_cpu import row_table

    rng = np.random.default_rng(0)
    length = 37
    kept = rng.random((50, length)) < 0.6
    kept[7] = False
    grid = np.where(kept, np.cumsum(kept).reshape(kept.shape), 0)
    grid[3, 5:9] = [100, 101, 200, 201]
    table, extra = row_table(grid.reshape(-1).astype(np.int64), length)
    rebuilt = np.zeros_like(grid)
    for r in range(grid.shape[0]):
        for start, stop, column in [table[r, :3], *extra[table[r, 3] : table[r + 1, 3]]]:
            assert not rebuilt[r, start:stop].any()
            rebuilt[r, start:stop] = np.arange(column, column + stop - start)
    assert np.array_equal(rebuilt, grid)
    assert table[8, 3] == table[7, 3]
    assert not table[7, :3].any()
