"""Lightning DataModules over the map cache and point clouds of brrrr-preprocess.

Both split *studies* with :func:`~brrrr.models.training.splits.study_split` (an analysis never
shares a split with another analysis of its study), standardise metadata with training-split
statistics, and serve :class:`~brrrr.models.training.data.ResumableDataLoader` batches that keep
a study's analyses together, are equal in number on every DDP rank, and resume mid-epoch.

Example:
    >>> dm = MapDataModule.from_peaks(peaks, groups=groups, cache_dir="cache",
    ...                               kernel=Gaussian(fwhm_mm=12), template=tpl)  # doctest: +SKIP
    >>> dm.split_sizes()  # doctest: +SKIP
    {'train': 731, 'val': 88, 'test': 87}
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import lightning as L
import numpy as np

from brrrr.models.training.data import (
    MapDataset,
    MetadataTable,
    PointCloudDataset,
    ResumableDataLoader,
    metadata_table,
)
from brrrr.models.training.splits import SplitConfig, study_split
from brrrr.preprocess.kernels import CachedMaps, Kernel, MapCache, PeakTable, Template
from brrrr.preprocess.pointclouds import PointClouds, load_point_clouds

__all__ = ["MapDataModule", "PointCloudDataModule"]


class _StudyDataModule(L.LightningDataModule):
    """Split, metadata and loaders shared by the two DataModules."""

    def __init__(
        self,
        facts: PeakTable | PointClouds,
        *,
        groups: Sequence[str] | np.ndarray,
        split: SplitConfig,
        metadata: Sequence[str],
        nuisance: Sequence[str],
        batch_size: int,
        num_workers: int,
        seed: int,
    ) -> None:
        super().__init__()
        self.groups = np.asarray([str(g) for g in groups], dtype=object)
        if len(self.groups) != len(facts.study_ids):
            raise ValueError(
                f"groups has {len(self.groups)} entries for {len(facts.study_ids)} rows"
            )
        self.splits = study_split(
            self.groups,
            val_fraction=split.val_fraction,
            test_fraction=split.test_fraction,
            seed=split.seed,
        )
        train = self.splits["train"]
        self.metadata: MetadataTable | None = (
            metadata_table(facts, metadata, train_rows=train) if metadata else None
        )
        self.nuisance: MetadataTable | None = (
            metadata_table(facts, nuisance, train_rows=train) if nuisance else None
        )
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed

    @property
    def metadata_dim(self) -> int:
        """Metadata entries ``M`` per item (0 without metadata)."""
        return 0 if self.metadata is None else len(self.metadata.names)

    @property
    def nuisance_dim(self) -> int:
        """Nuisance entries ``P`` per item."""
        return 0 if self.nuisance is None else len(self.nuisance.names)

    def split_sizes(self) -> dict[str, int]:
        """Rows per split."""
        return {name: len(rows) for name, rows in self.splits.items()}

    def dataset(self, split: str) -> Any:
        """The dataset of ``"train"``, ``"val"`` or ``"test"``."""
        raise NotImplementedError

    def _extras(self) -> dict[str, Any]:
        return {
            "groups": self.groups,
            "metadata": None if self.metadata is None else self.metadata.values,
            "nuisance": None if self.nuisance is None else self.nuisance.values,
        }

    def _loader(self, split: str, *, shuffle: bool) -> ResumableDataLoader:
        return ResumableDataLoader(
            self.dataset(split),
            batch_size=self.batch_size,
            shuffle=shuffle,
            seed=self.seed,
            num_workers=self.num_workers,
        )

    def train_dataloader(self) -> ResumableDataLoader:
        """Shuffled (by study, per epoch) training batches of this rank."""
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> ResumableDataLoader:
        """Validation batches of this rank, in a fixed order."""
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> ResumableDataLoader:
        """Test batches of this rank, in a fixed order."""
        return self._loader("test", shuffle=False)


class MapDataModule(_StudyDataModule):
    """Batches of kernel maps ``{"x": (B, 1, I, J, K), ...}`` from a map cache.

    Args:
        maps: The cached maps of every row (``MapCache.build`` / ``lookup``).
        template: Their grid.
        peaks: The peak table the maps were made from (for metadata).
        groups: ``(S,)`` study of each row: splits never separate a study.
        split: Split fractions and seed.
        metadata: Metadata fields (``"year"``, ``"sample_size"``, ``"n_peaks"``).
        nuisance: Fields the adversary predicts (e.g. ``("year",)``).
        batch_size: Most analyses per batch.
        num_workers: Loader workers.
        seed: Seed of the batch order.
        scale: Multiplies the maps.
    """

    def __init__(
        self,
        maps: CachedMaps | np.ndarray,
        *,
        template: Template,
        peaks: PeakTable,
        groups: Sequence[str] | np.ndarray,
        split: SplitConfig | None = None,
        metadata: Sequence[str] = (),
        nuisance: Sequence[str] = (),
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
        scale: float = 1.0,
    ) -> None:
        super().__init__(
            peaks,
            groups=groups,
            split=split or SplitConfig(),
            metadata=metadata,
            nuisance=nuisance,
            batch_size=batch_size,
            num_workers=num_workers,
            seed=seed,
        )
        if len(maps) != peaks.n_studies:
            raise ValueError(f"{len(maps)} maps for {peaks.n_studies} studies")
        self.maps = maps
        self.template = template
        self.scale = scale

    @classmethod
    def from_peaks(
        cls,
        peaks: PeakTable,
        *,
        cache_dir: str | os.PathLike[str],
        kernel: Kernel,
        template: Template,
        progress: bool = False,
        **kwargs: Any,
    ) -> MapDataModule:
        """Build (or reuse) the map cache of ``peaks`` and serve it.

        Args:
            peaks: The studies.
            cache_dir: :class:`~brrrr.preprocess.kernels.MapCache` folder; maps already in it
                are not recomputed.
            kernel: Kernel of the maps.
            template: Grid (and mask) of the maps.
            progress: Show the cache build's progress bar.
            **kwargs: :class:`MapDataModule` arguments (``groups`` is required).
        """
        maps = MapCache(cache_dir).build(peaks, kernel=kernel, template=template, progress=progress)
        return cls(maps, template=template, peaks=peaks, **kwargs)

    def voxel_statistics(self, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """Voxel-wise mean and variance of the maps of one split (use ``"train"`` only).

        Returns:
            ``(mean, variance)``, each ``(1, I, J, K)`` float32 on the template grid (scaled).
        """
        dataset = self.dataset(split)
        total = np.zeros((1, *self.template.shape), dtype=np.float64)
        squares = np.zeros_like(total)
        for index in range(len(dataset)):
            x = dataset[index]["x"].numpy().astype(np.float64)
            total += x
            squares += x * x
        n = max(1, len(dataset))
        mean = total / n
        variance = np.maximum(squares / n - mean * mean, 0.0)
        return mean.astype(np.float32), variance.astype(np.float32)

    def dataset(self, split: str) -> MapDataset:
        """The :class:`MapDataset` of ``"train"``, ``"val"`` or ``"test"``."""
        return MapDataset(
            self.maps,
            template=self.template,
            rows=self.splits[split],
            scale=self.scale,
            **self._extras(),
        )


class PointCloudDataModule(_StudyDataModule):
    """Batches of point clouds ``{"points": (B, N, 3), "mask": (B, N), ...}``.

    Args:
        clouds: The clouds (``to_point_clouds`` or ``load_point_clouds``).
        groups: ``(S,)`` study of each row (default: the clouds' own ids).
        split, metadata, nuisance, batch_size, num_workers, seed: as in :class:`MapDataModule`.
    """

    def __init__(
        self,
        clouds: PointClouds,
        *,
        groups: Sequence[str] | np.ndarray | None = None,
        split: SplitConfig | None = None,
        metadata: Sequence[str] = (),
        nuisance: Sequence[str] = (),
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(
            clouds,
            groups=clouds.study_ids if groups is None else groups,
            split=split or SplitConfig(),
            metadata=metadata,
            nuisance=nuisance,
            batch_size=batch_size,
            num_workers=num_workers,
            seed=seed,
        )
        self.clouds = clouds

    @classmethod
    def from_folder(cls, folder: str | os.PathLike[str], **kwargs: Any) -> PointCloudDataModule:
        """Serve clouds saved with ``save_point_clouds`` (memory-mapped)."""
        return cls(load_point_clouds(folder), **kwargs)

    @property
    def n_points(self) -> int:
        """Points per cloud."""
        return self.clouds.n_points

    def dataset(self, split: str) -> PointCloudDataset:
        """The :class:`PointCloudDataset` of ``"train"``, ``"val"`` or ``"test"``."""
        return PointCloudDataset(self.clouds, rows=self.splits[split], **self._extras())
