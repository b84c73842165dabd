"""Datasets, metadata standardisation and the resumable, rank-aware loader."""

from __future__ import annotations

import numpy as np
import torch

from brrrr.models.training.data import (
    MapDataset,
    MetadataTable,
    PointCloudDataset,
    ResumableDataLoader,
    metadata_table,
)
from brrrr.models.training.samples import synthetic_peaks, toy_template
from brrrr.preprocess.kernels import Gaussian, peaks_to_maps
from brrrr.preprocess.pointclouds import to_point_clouds


def test_metadata_is_standardised_with_training_rows_only() -> None:
    peaks, _ = synthetic_peaks(n_studies=6, analyses_per_study=1)
    train = np.array([0, 1, 2, 3])
    table = metadata_table(peaks, ("year", "sample_size", "n_peaks"), train_rows=train)
    years = peaks.years[train][np.isfinite(peaks.years[train])]
    np.testing.assert_allclose(table.mean[0], years.mean())
    np.testing.assert_allclose(table.values[0, 0], (peaks.years[0] - years.mean()) / years.std())
    assert np.isnan(table.values[1, 0])
    assert np.isnan(peaks.years[1])
    np.testing.assert_allclose(
        table.mean[2], np.log1p(peaks.peaks_per_study[train]).mean(), rtol=1e-6
    )
    # changing a non-training row does not move the statistics
    other = metadata_table(peaks, ("n_peaks",), train_rows=np.array([0, 1, 2, 4]))
    assert other.mean[0] != table.mean[2]
    raw = MetadataTable.standardise({"year": 2004.0}, table.to_dict())
    np.testing.assert_allclose(raw[0], (2004.0 - table.mean[0]) / table.std[0], rtol=1e-6)
    assert np.isnan(raw[1:]).all()


def test_map_dataset_unmasks_to_the_grid() -> None:
    peaks, groups = synthetic_peaks(n_studies=3, analyses_per_study=1)
    tpl = toy_template()
    maps = peaks_to_maps(peaks, kernel=Gaussian(fwhm_mm=20), template=tpl).numpy()
    ds = MapDataset(maps, template=tpl, rows=np.array([2, 0]), groups=groups)
    item = ds[0]
    assert item["x"].shape == (1, *tpl.shape)
    np.testing.assert_array_equal(item["x"][0].numpy(), tpl.unmask(maps[2]))
    assert int(item["index"]) == 2
    assert ds.study_ids == [groups[2], groups[0]]


def test_point_cloud_dataset_items() -> None:
    peaks, groups = synthetic_peaks(n_studies=2, analyses_per_study=1)
    clouds = to_point_clouds(peaks, n_points=8)
    meta = np.zeros((2, 1), dtype=np.float32)
    item = PointCloudDataset(clouds, rows=np.array([1]), groups=groups, metadata=meta)[0]
    assert item["points"].shape == (8, 3)
    assert item["mask"].dtype == torch.bool
    assert item["metadata_mask"].tolist() == [True]


def _loader(n_studies: int = 10, **kwargs: object) -> ResumableDataLoader:
    peaks, groups = synthetic_peaks(n_studies=n_studies, analyses_per_study=2)
    maps = np.zeros((peaks.n_studies, 4), dtype=np.float32)
    from brrrr.preprocess.kernels import Template

    tpl = Template(np.eye(4), (2, 2, 1))
    ds = MapDataset(maps, template=tpl, rows=np.arange(peaks.n_studies), groups=groups)
    return ResumableDataLoader(ds, batch_size=4, seed=5, **kwargs)  # type: ignore[arg-type]


def _epoch(loader: ResumableDataLoader, epoch: int) -> list[list[int]]:
    loader.batch_sampler.set_epoch(epoch)  # type: ignore[union-attr]
    return [batch["index"].tolist() for batch in loader]


def test_loader_resumes_mid_epoch_with_the_same_batches() -> None:
    loader = _loader()
    full = _epoch(loader, 3)
    assert len(full) == len(loader) >= 4
    assert _epoch(loader, 4) != full  # a new order every epoch
    it = iter(loader)
    loader.batch_sampler.set_epoch(3)  # type: ignore[union-attr]
    seen = [next(it)["index"].tolist() for _ in range(2)]
    state = loader.state_dict()
    assert state == {"epoch": 3, "position": 2}
    assert seen == full[:2]
    fresh = _loader()
    fresh.load_state_dict(state)
    assert _epoch(fresh, 3) == full[2:]  # exactly the rest, in order
    assert _epoch(fresh, 3) == full  # the skip applies once
    other = _loader()
    other.load_state_dict(state)
    assert _epoch(other, 4) == _epoch(_loader(), 4)  # a state of another epoch is ignored


def test_ranks_get_disjoint_batches_of_equal_count_and_whole_studies() -> None:
    # 8 studies of 2 analyses, 4 per batch: 4 batches, 2 per rank, no padding repeat
    rank0 = _loader(8, num_replicas=2, rank=0)
    rank1 = _loader(8, num_replicas=2, rank=1)
    a, b = _epoch(rank0, 0), _epoch(rank1, 0)
    assert len(a) == len(b) == 2
    groups = rank0.dataset.study_ids  # type: ignore[attr-defined]
    studies_a = {groups[i] for batch in a for i in batch}
    studies_b = {groups[i] for batch in b for i in batch}
    assert not studies_a & studies_b
    assert studies_a | studies_b == set(groups)
    for batch in a + b:  # a study's analyses share a batch
        for i in batch:
            assert all(j in batch for j in range(len(groups)) if groups[j] == groups[i])
