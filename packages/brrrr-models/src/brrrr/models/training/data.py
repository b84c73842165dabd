"""Torch datasets over brrrr-preprocess caches, study metadata, and a resumable loader.

* :class:`MapDataset` serves maps from a :class:`~brrrr.preprocess.kernels.CachedMaps`
  (masked or grid layout) as ``(1, I, J, K)`` tensors; :class:`PointCloudDataset` serves
  :class:`~brrrr.preprocess.pointclouds.PointClouds`. Both return dicts and expose
  ``study_ids`` so the study-aware sampler keeps a study's analyses in one batch.
* :func:`metadata_table` standardises study facts with *training-split* statistics only.
* :class:`ResumableDataLoader`: batches from a :class:`~brrrr.preprocess.neurovfm.sampler.
  StudyAwareBatchSampler` (a pure function of seed and epoch, rank-aware) with Lightning's
  ``state_dict``/``load_state_dict`` protocol, so a run resumed from a mid-epoch checkpoint
  skips exactly the batches it already trained on, in the same order.

Why the loader needs this (the Lightning subtlety): Lightning restores the weights, optimizer and
loop counters, but a plain ``DataLoader`` restarts its epoch from the first batch and draws a
new shuffle from the global RNG, so a resumed run sees other batches than an uninterrupted one.
Here the order depends only on ``(seed, epoch)``; the position is the number of batches the
main-process iterator has handed out in the epoch (Lightning does not prefetch from loaders
with a length, so at a checkpoint this equals the batches trained on); and the loader owns a
seeded ``torch.Generator`` so creating an iterator draws nothing from the global RNG.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from brrrr.models.errors import ModelConfigError
from brrrr.preprocess.kernels import CachedMaps, PeakTable, Template
from brrrr.preprocess.neurovfm.sampler import StudyAwareBatchSampler
from brrrr.preprocess.pointclouds import PointClouds

__all__ = [
    "METADATA_FIELDS",
    "MapDataset",
    "MetadataTable",
    "PointCloudDataset",
    "ResumableBatchSampler",
    "ResumableDataLoader",
    "metadata_table",
]

METADATA_FIELDS = ("year", "sample_size", "n_peaks")


class MetadataTable:
    """Standardised study facts.

    Attributes:
        names: ``(M,)`` field names.
        values: ``(S, M)`` float32 standardised values, NaN where unknown.
        mean: ``(M,)`` training-split mean of each (transformed) field.
        std: ``(M,)`` training-split standard deviation.
    """

    def __init__(
        self, names: Sequence[str], values: np.ndarray, mean: np.ndarray, std: np.ndarray
    ) -> None:
        self.names = tuple(names)
        self.values = values
        self.mean = mean
        self.std = std

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready statistics (what ``brrrr generate`` needs to standardise raw facts)."""
        return {
            "names": list(self.names),
            "transforms": {n: _TRANSFORM_NAMES[n] for n in self.names},
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
        }

    @staticmethod
    def standardise(raw: dict[str, float], stats: dict[str, Any]) -> np.ndarray:
        """Standardise raw facts (``{"year": 2010}``) with saved statistics; NaN where absent."""
        out = []
        for name, mean, std in zip(stats["names"], stats["mean"], stats["std"], strict=True):
            value = raw.get(name)
            out.append(
                np.nan if value is None else (float(_TRANSFORMS[name](float(value))) - mean) / std
            )
        return np.asarray(out, dtype=np.float32)


_TRANSFORMS: dict[str, Callable[[Any], Any]] = {
    "year": np.asarray,
    "sample_size": np.log,
    "n_peaks": np.log1p,
}
_TRANSFORM_NAMES = {"year": "identity", "sample_size": "log", "n_peaks": "log1p"}


def metadata_table(
    facts: PeakTable | PointClouds, names: Sequence[str], *, train_rows: np.ndarray
) -> MetadataTable:
    """Study facts as model metadata: transformed, standardised on the training rows.

    ``year`` as is, ``sample_size`` as its log, ``n_peaks`` as ``log1p``. Unknown facts stay NaN
    (the model sees a missing-value mask); nothing is imputed here.

    Args:
        facts: A peak table or point clouds (they carry years, sample sizes and peak counts).
        names: Fields, from :data:`METADATA_FIELDS`.
        train_rows: Rows whose statistics are used (never validation or test rows).

    Returns:
        The :class:`MetadataTable`.
    """
    unknown = sorted(set(names) - set(METADATA_FIELDS))
    if unknown:
        raise ModelConfigError(f"unknown metadata {unknown}; choose from {METADATA_FIELDS}")
    n_peaks = facts.peaks_per_study if isinstance(facts, PeakTable) else facts.n_peaks
    columns = {"year": facts.years, "sample_size": facts.sample_sizes, "n_peaks": n_peaks}
    values = np.full((len(facts.study_ids), len(names)), np.nan, dtype=np.float64)
    mean, std = np.zeros(len(names)), np.ones(len(names))
    for m, name in enumerate(names):
        raw = np.asarray(columns[name], dtype=np.float64)
        column = _TRANSFORMS[name](np.where(np.isfinite(raw) & (raw > 0), raw, np.nan))
        train = column[train_rows]
        train = train[np.isfinite(train)]
        if train.size:
            mean[m] = float(train.mean())
            std[m] = float(train.std()) or 1.0
        values[:, m] = (column - mean[m]) / std[m]
    return MetadataTable(names, values.astype(np.float32), mean, std)


class _StudyRows(Dataset[dict[str, torch.Tensor]]):
    def __init__(
        self,
        rows: np.ndarray,
        groups: np.ndarray,
        metadata: np.ndarray | None,
        nuisance: np.ndarray | None,
    ) -> None:
        self.rows = np.asarray(rows, dtype=np.int64)
        self.study_ids = [str(groups[r]) for r in self.rows]
        self.metadata = metadata
        self.nuisance = nuisance

    def __len__(self) -> int:
        return len(self.rows)

    def _extras(self, row: int) -> dict[str, torch.Tensor]:
        out = {"index": torch.tensor(row)}
        if self.metadata is not None:
            values = torch.from_numpy(np.array(self.metadata[row], dtype=np.float32))
            out["metadata"] = values
            out["metadata_mask"] = torch.isfinite(values)
        if self.nuisance is not None:
            out["nuisance"] = torch.from_numpy(np.array(self.nuisance[row], dtype=np.float32))
        return out


class MapDataset(_StudyRows):
    """Maps of some rows of a map cache, on the template grid.

    Items: ``{"x": (1, I, J, K) float32, "index": row, "metadata": (M,), "metadata_mask": (M,)
    bool, "nuisance": (P,)}`` (the last three when given).

    Args:
        maps: Cached maps, ``(V,)`` masked or ``(I, J, K)`` grid layout per study.
        template: The grid of the maps (unmasks the masked layout).
        rows: Rows served, in this order.
        groups: ``(S,)`` study of every row of ``maps``.
        metadata: ``(S, M)`` standardised metadata, NaN where unknown.
        nuisance: ``(S, P)`` nuisance targets (e.g. standardised year), NaN where unknown.
        scale: Multiplies the maps.
    """

    def __init__(
        self,
        maps: CachedMaps | np.ndarray,
        *,
        template: Template,
        rows: np.ndarray,
        groups: np.ndarray,
        metadata: np.ndarray | None = None,
        nuisance: np.ndarray | None = None,
        scale: float = 1.0,
    ) -> None:
        super().__init__(rows, groups, metadata, nuisance)
        self.maps = maps
        self.template = template
        self.scale = scale

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        row = int(self.rows[index])
        values = np.asarray(self.maps[row], dtype=np.float32)
        if values.shape != self.template.shape:
            values = self.template.unmask(values)
        x = torch.from_numpy(np.ascontiguousarray(values) * np.float32(self.scale))
        return {"x": x[None], **self._extras(row)}


class PointCloudDataset(_StudyRows):
    """Point clouds of some studies.

    Items: ``{"points": (N, 3) float32 mm, "mask": (N,) bool real points, "index", ...}``.

    Args:
        clouds: The clouds.
        rows: Rows served.
        groups: ``(S,)`` study of every row.
        metadata: ``(S, M)`` standardised metadata.
        nuisance: ``(S, P)`` nuisance targets.
    """

    def __init__(
        self,
        clouds: PointClouds,
        *,
        rows: np.ndarray,
        groups: np.ndarray,
        metadata: np.ndarray | None = None,
        nuisance: np.ndarray | None = None,
    ) -> None:
        super().__init__(rows, groups, metadata, nuisance)
        self.clouds = clouds

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        row = int(self.rows[index])
        return {
            "points": torch.from_numpy(np.array(self.clouds.points[row], dtype=np.float32)),
            "mask": torch.from_numpy(np.array(self.clouds.is_real[row], dtype=bool)),
            **self._extras(row),
        }


class ResumableBatchSampler:
    """A study-aware batch sampler that can start its next epoch part-way through.

    Args:
        sampler: The epoch-seeded, rank-aware batch sampler.
    """

    def __init__(self, sampler: StudyAwareBatchSampler) -> None:
        self.sampler = sampler
        self._resume: tuple[int, int] | None = None
        self.start = 0

    @property
    def epoch(self) -> int:
        """The epoch whose batches the next iteration yields."""
        return self.sampler.epoch

    def set_epoch(self, epoch: int) -> None:
        """Use the order of ``epoch`` (Lightning calls this at each epoch start)."""
        self.sampler.set_epoch(epoch)

    def resume(self, *, epoch: int, position: int) -> None:
        """Skip the first ``position`` batches the next time epoch ``epoch`` is iterated."""
        self._resume = (epoch, position)

    def __iter__(self) -> Iterator[list[int]]:
        batches = list(self.sampler)
        self.start = 0
        if self._resume is not None and self._resume[0] == self.sampler.epoch:
            self.start = min(self._resume[1], len(batches))
        self._resume = None
        return iter(batches[self.start :])

    def __len__(self) -> int:
        return len(self.sampler)


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` over a :class:`ResumableBatchSampler` that Lightning checkpoints.

    Args:
        dataset: A dataset exposing ``study_ids``.
        batch_size: Most items per batch (studies are never split).
        shuffle: Permute studies every epoch.
        seed: Seed of the order (same on every rank) and of the loader's generator.
        num_workers: Worker processes.
        num_replicas: Ranks (default: from ``torch.distributed``).
        rank: This rank (default: from ``torch.distributed``).
    """

    def __init__(
        self,
        dataset: _StudyRows,
        *,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        num_workers: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        sampler = StudyAwareBatchSampler(
            dataset,
            batch_size,
            shuffle="studies" if shuffle else "none",
            seed=seed,
            num_replicas=num_replicas,
            rank=rank,
        )
        super().__init__(
            dataset,
            batch_sampler=ResumableBatchSampler(sampler),
            num_workers=num_workers,
            generator=torch.Generator().manual_seed(seed),
            persistent_workers=num_workers > 0,
        )
        self.position = 0

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        batches = super().__iter__()  # draws this epoch's plan, and sets ``start``
        assert isinstance(self.batch_sampler, ResumableBatchSampler)
        self.position = self.batch_sampler.start
        for batch in batches:
            self.position += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        """``{"epoch", "position"}``: batches handed out so far in the current epoch."""
        assert isinstance(self.batch_sampler, ResumableBatchSampler)
        return {"epoch": self.batch_sampler.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Make the next iteration of ``state["epoch"]`` skip ``state["position"]`` batches."""
        assert isinstance(self.batch_sampler, ResumableBatchSampler)
        self.batch_sampler.resume(epoch=int(state["epoch"]), position=int(state["position"]))
