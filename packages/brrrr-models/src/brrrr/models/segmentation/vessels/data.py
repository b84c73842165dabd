"""Vessel volumes for training and evaluation: the MiniVess layout through the microscopy preparation.

A dataset folder holds ``imagesTr/<id>.nii.gz`` and ``labelsTr/<id>.nii.gz`` (or ``raw/`` +
``seg/<id>_y``), optionally ``metadata/<id>.json`` sidecars: the layout of ``brrrr fetch
minivess`` and of :func:`~brrrr.models.segmentation.vessels.synthetic.write_synthetic_vessels`.
:func:`prepare_vessel_volumes`:

1. pairs the files and checks that every image and label is 3-D
   (:func:`check_vessel_pairs`; missing partners, misnamed files and shape mismatches are
   refused with the file named);
2. resamples each pair to ``spacing_um`` with
   :func:`brrrr.preprocess.microscopy.dataset.prepare_dataset`: voxel sizes in µm from the
   sidecar (else the header's unit), images linear and labels nearest, and every output array
   over ``memory_budget_bytes`` computed in slabs through a memory-mapped file rather than in
   memory;
3. normalises each image (clipped to its 0.5–99.5th percentiles, then z-scored over the
   volume: an additive brightness change is undone exactly) and stores image and label as
   ``.npy`` files beside the prepared NIfTI, which the datasets read as memory maps: one volume
   at a time is ever held in memory, whatever the size of the dataset.

:class:`VesselPatchDataset` draws random patches (half of them centred on a vessel voxel, random
in-plane flips); :class:`VesselDataModule` splits the volumes (by id, seeded) into training and
validation sets and serves patches and whole validation volumes.

Example:
    >>> volumes = prepare_vessel_volumes("minivess", "prepared", spacing_um=(1, 1, 5))  # doctest: +SKIP
    >>> volumes[0].shape  # doctest: +SKIP
    (512, 512, 61)
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from brrrr.core.errors import MissingDependencyError
from brrrr.models.segmentation.errors import SegmentationError
from brrrr.models.segmentation.preprocessing import Normalization, normalize

try:
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, Dataset
except ImportError:  # pragma: no cover - depends on the environment
    raise MissingDependencyError(
        'vessel training needs Lightning: pip install "brrrr-models[lightning,segmentation]"'
    ) from None

__all__ = [
    "VESSEL_NORMALIZATION",
    "PreparedVessel",
    "VesselDataModule",
    "VesselPatchDataset",
    "check_vessel_pairs",
    "prepare_vessel_volumes",
    "split_volumes",
]

#: How images are normalised before the network sees them.
VESSEL_NORMALIZATION = Normalization(method="zscore", region="all", clip_percentiles=(0.5, 99.5))


@dataclass(frozen=True)
class PreparedVessel:
    """One prepared volume: normalised image and label on the model grid, as ``.npy`` files.

    Attributes:
        id: The pair's id (``"mv01"``).
        image_path: ``(I, J, K)`` float32 normalised image (``.npy``).
        label_path: ``(I, J, K)`` uint8 label, 0/1 (``.npy``).
        shape: ``(I, J, K)`` on the model grid.
        spacing_um: Voxel size of the model grid in µm.
        affine: (4, 4) voxel→world matrix of the model grid (mm).
        source: The original image file.
        label_source: The original label file.
    """

    id: str
    image_path: Path
    label_path: Path
    shape: tuple[int, int, int]
    spacing_um: tuple[float, float, float]
    affine: np.ndarray
    source: Path
    label_source: Path

    def image(self) -> np.ndarray:
        """The normalised image, memory-mapped read-only."""
        return np.load(self.image_path, mmap_mode="r")

    def label(self) -> np.ndarray:
        """The label, memory-mapped read-only."""
        return np.load(self.label_path, mmap_mode="r")


def _spacing_triple(spacing_um: float | Sequence[float]) -> tuple[float, float, float]:
    values = np.broadcast_to(np.asarray(spacing_um, dtype=np.float64).reshape(-1), (3,))
    if not (np.isfinite(values).all() and (values > 0).all()):
        raise SegmentationError(f"spacing_um needs positive voxel sizes in µm, got {list(values)}")
    return (float(values[0]), float(values[1]), float(values[2]))


def check_vessel_pairs(data_dir: str | os.PathLike[str]) -> list[Any]:
    """The image/label pairs of a dataset folder, each file checked to be a 3-D volume.

    Args:
        data_dir: A folder in the MiniVess/MSD layout
            (:func:`brrrr.preprocess.microscopy.dataset.discover_nifti_pairs`).

    Returns:
        The :class:`~brrrr.preprocess.microscopy.dataset.NiftiPair` list, in id order.

    Raises:
        PairingError: No layout, or files without a partner (all listed, each named).
        SegmentationError: An image or label that is not 3-D, or an unreadable header.
    """
    import nibabel as nib

    from brrrr.preprocess.microscopy.dataset import discover_nifti_pairs

    pairs = discover_nifti_pairs(data_dir)
    for pair in pairs:
        for role, path in (("image", pair.image), ("label", pair.label)):
            try:
                shape = tuple(int(n) for n in nib.load(path).shape)  # type: ignore[attr-defined]
            except Exception as error:  # nibabel raises many kinds on a damaged header
                raise SegmentationError(
                    f"cannot read the {role} header: {error}", path=path
                ) from None
            if len(shape) != 3:
                raise SegmentationError(
                    f"the {role} is {len(shape)}-D with shape {shape}; vessel volumes are "
                    "single-channel 3-D stacks (I, J, K)",
                    path=path,
                )
    return pairs


def prepare_vessel_volumes(
    data_dir: str | os.PathLike[str],
    work_dir: str | os.PathLike[str],
    *,
    spacing_um: float | Sequence[float],
    memory_budget_bytes: int | None = 1 << 30,
    progress: Literal["bar", "off"] = "bar",
) -> list[PreparedVessel]:
    """Prepare every pair of ``data_dir`` on a grid of ``spacing_um`` (see the module docstring).

    Args:
        data_dir: The dataset folder.
        work_dir: Where the prepared NIfTI (``imagesTr/``, ``labelsTr/``,
            ``validation_report.json``) and the ``.npy`` arrays (``arrays/``) go.
        spacing_um: Voxel size of the model grid in µm, one number or three.
        memory_budget_bytes: Largest array a resample may build in memory; larger outputs are
            written in slabs through a memory map. ``None``: no limit.
        progress: ``"bar"`` shows a progress bar.

    Returns:
        The prepared volumes, in id order.

    Raises:
        PairingError: Unmatched files, or a label whose shape differs from its image.
        SegmentationError: A volume that is not 3-D, or a bad spacing.
        MemoryBudgetError: Not even one slab of an output fits the budget.
    """
    from brrrr.core import load_volume
    from brrrr.preprocess.microscopy.dataset import prepare_dataset

    spacing = _spacing_triple(spacing_um)
    pairs = check_vessel_pairs(data_dir)
    work = Path(work_dir)
    reports = prepare_dataset(
        pairs,
        work,
        target_spacing_um=spacing,
        memory_budget_bytes=memory_budget_bytes,
        over_budget="tile",
        progress=progress,
    )
    arrays = work / "arrays"
    arrays.mkdir(parents=True, exist_ok=True)
    prepared = []
    for pair, report in zip(pairs, reports, strict=True):
        image = load_volume(work / "imagesTr" / f"{pair.id}.nii.gz")
        label = load_volume(work / "labelsTr" / f"{pair.id}.nii.gz")
        image_path, label_path = arrays / f"{pair.id}_image.npy", arrays / f"{pair.id}_label.npy"
        np.save(image_path, normalize(image.data, VESSEL_NORMALIZATION))
        np.save(label_path, (np.asarray(label.data) != 0).astype(np.uint8))
        shape = image.shape
        prepared.append(
            PreparedVessel(
                id=pair.id,
                image_path=image_path,
                label_path=label_path,
                shape=(int(shape[0]), int(shape[1]), int(shape[2])),
                spacing_um=_spacing_triple(report.prepared_spacing_um),
                affine=np.asarray(image.affine),
                source=pair.image,
                label_source=pair.label,
            )
        )
        del image, label
    index = [
        {
            "id": p.id,
            "shape": list(p.shape),
            "spacing_um": list(p.spacing_um),
            "source": str(p.source),
        }
        for p in prepared
    ]
    (work / "prepared.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return prepared


def split_volumes(
    volumes: Sequence[PreparedVessel], *, val_fraction: float, seed: int
) -> tuple[list[PreparedVessel], list[PreparedVessel]]:
    """Training and validation volumes: a seeded shuffle of the ids, at least one of each.

    Raises:
        SegmentationError: Fewer than two volumes, or ``val_fraction`` outside (0, 1).
    """
    if not 0.0 < val_fraction < 1.0:
        raise SegmentationError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if len(volumes) < 2:
        raise SegmentationError(
            f"training needs at least 2 volumes (one for validation), found {len(volumes)}"
        )
    order = np.random.default_rng([int(seed), 0xA1]).permutation(len(volumes))
    n_val = min(len(volumes) - 1, max(1, round(val_fraction * len(volumes))))
    val = sorted((volumes[i] for i in order[:n_val]), key=lambda v: v.id)
    train = sorted((volumes[i] for i in order[n_val:]), key=lambda v: v.id)
    return train, val


def _patch_size(patch: Sequence[int]) -> tuple[int, int, int]:
    values = tuple(int(p) for p in patch)
    if len(values) != 3 or min(values) < 1:
        raise SegmentationError(f"patch needs 3 positive sizes in voxels, got {list(patch)}")
    return (values[0], values[1], values[2])


class VesselPatchDataset(Dataset[dict[str, torch.Tensor]]):
    """Random training patches from prepared volumes.

    Item ``n`` comes from volume ``n % len(volumes)``; its position and flips are drawn from
    ``(seed, epoch, n)``, so an epoch is reproducible and the next one (:meth:`set_epoch`)
    differs. With probability ``foreground_p`` the patch is centred (± a quarter patch) on a
    vessel voxel; volumes smaller than the patch are padded with the image's minimum.

    Args:
        volumes: The prepared volumes.
        patch: Patch size in voxels ``(I, J, K)``.
        samples_per_volume: Patches per volume and epoch.
        foreground_p: Share of patches centred on vessel.
        seed: Seed of the draws.

    Items:
        ``{"image": (1, *patch) float32, "label": (1, *patch) int64}``.
    """

    def __init__(
        self,
        volumes: Sequence[PreparedVessel],
        *,
        patch: Sequence[int],
        samples_per_volume: int = 8,
        foreground_p: float = 0.5,
        seed: int = 0,
    ) -> None:
        if not volumes:
            raise SegmentationError("no volumes to draw patches from")
        self.volumes = list(volumes)
        self.patch = _patch_size(patch)
        self.samples_per_volume = int(samples_per_volume)
        self.foreground_p = float(foreground_p)
        self.seed = int(seed)
        self.epoch = 0
        self._foreground: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.volumes) * self.samples_per_volume

    def set_epoch(self, epoch: int) -> None:
        """Draw the patches of another epoch."""
        self.epoch = int(epoch)

    def _vessel_voxels(self, volume: PreparedVessel) -> np.ndarray:
        if volume.id not in self._foreground:
            voxels = np.argwhere(volume.label())
            if len(voxels) > 100_000:  # a sample is enough to pick centres from
                keep = np.random.default_rng(0).choice(len(voxels), 100_000, replace=False)
                voxels = voxels[np.sort(keep)]
            self._foreground[volume.id] = voxels
        return self._foreground[volume.id]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        volume = self.volumes[index % len(self.volumes)]
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        shape, extent = np.asarray(volume.shape), np.asarray(self.patch)
        vessels = self._vessel_voxels(volume)
        if len(vessels) and rng.random() < self.foreground_p:
            centre = vessels[rng.integers(len(vessels))] + rng.integers(
                -extent // 4, extent // 4 + 1
            )
            start = centre - extent // 2
        else:
            start = np.asarray(
                [rng.integers(0, max(1, s - e + 1)) for s, e in zip(shape, extent, strict=True)]
            )
        start = np.clip(start, np.minimum(0, shape - extent), np.maximum(0, shape - extent))
        image, label = volume.image(), volume.label()
        low = np.maximum(start, 0)
        high = np.minimum(start + extent, shape)
        box = tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True))
        pads = [
            (int(a - s), int(s + e - b))
            for a, b, s, e in zip(low, high, start, extent, strict=True)
        ]
        crop_image = np.asarray(image[box], dtype=np.float32)
        fill = float(crop_image.min()) if crop_image.size else 0.0
        crop_image = np.pad(crop_image, pads, constant_values=fill)
        crop_label = np.pad(np.asarray(label[box], dtype=np.int64), pads)
        for axis in (0, 1):
            if rng.random() < 0.5:
                crop_image, crop_label = np.flip(crop_image, axis), np.flip(crop_label, axis)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(crop_image)[None]),
            "label": torch.from_numpy(np.ascontiguousarray(crop_label)[None]),
        }


class _WholeVolumes(Dataset[dict[str, Any]]):
    def __init__(self, volumes: Sequence[PreparedVessel]) -> None:
        self.volumes = list(volumes)

    def __len__(self) -> int:
        return len(self.volumes)

    def __getitem__(self, index: int) -> dict[str, Any]:
        volume = self.volumes[index]
        return {
            "id": volume.id,
            "image": torch.from_numpy(np.array(volume.image(), dtype=np.float32)[None]),
            "label": torch.from_numpy(np.array(volume.label(), dtype=np.uint8)),
        }


def _first(batch: list[dict[str, Any]]) -> dict[str, Any]:
    return batch[0]


class VesselDataModule(L.LightningDataModule):
    """Patches of the training volumes and whole validation volumes of one dataset folder.

    Args:
        data_dir: The dataset folder (MiniVess layout).
        work_dir: Folder of the prepared volumes (see :func:`prepare_vessel_volumes`).
        spacing_um: Voxel size of the model grid in µm.
        patch: Training patch size in voxels of the model grid.
        memory_budget_bytes: Largest array a resample may build in memory.
        val_fraction: Share of the volumes held out for validation (at least one).
        batch_size: Patches per step.
        samples_per_volume: Patches per training volume and epoch.
        seed: Seed of the split and the patches.
        num_workers: DataLoader workers.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        work_dir: str | os.PathLike[str],
        *,
        spacing_um: float | Sequence[float],
        patch: Sequence[int] = (64, 64, 16),
        memory_budget_bytes: int | None = 1 << 30,
        val_fraction: float = 0.25,
        batch_size: int = 2,
        samples_per_volume: int = 8,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.data_dir, self.work_dir = Path(data_dir), Path(work_dir)
        self.spacing_um = _spacing_triple(spacing_um)
        self.patch = _patch_size(patch)
        self.memory_budget_bytes = memory_budget_bytes
        self.val_fraction = float(val_fraction)
        self.batch_size = int(batch_size)
        self.samples_per_volume = int(samples_per_volume)
        self.seed = int(seed)
        self.num_workers = int(num_workers)
        self.train_volumes: list[PreparedVessel] = []
        self.val_volumes: list[PreparedVessel] = []
        self.train_set: VesselPatchDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        """Prepare the volumes (once) and split them."""
        if self.train_set is not None:
            return
        volumes = prepare_vessel_volumes(
            self.data_dir,
            self.work_dir,
            spacing_um=self.spacing_um,
            memory_budget_bytes=self.memory_budget_bytes,
            progress="off",
        )
        self.train_volumes, self.val_volumes = split_volumes(
            volumes, val_fraction=self.val_fraction, seed=self.seed
        )
        self.train_set = VesselPatchDataset(
            self.train_volumes,
            patch=self.patch,
            samples_per_volume=self.samples_per_volume,
            seed=self.seed,
        )

    def train_dataloader(self) -> DataLoader[dict[str, torch.Tensor]]:
        """Shuffled patches of the training volumes."""
        assert self.train_set is not None, "call setup() first"
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            shuffle=True,
            num_workers=self.num_workers,
            generator=torch.Generator().manual_seed(self.seed),
            drop_last=False,
        )

    def val_dataloader(self) -> DataLoader[dict[str, Any]]:
        """The validation volumes, whole, one at a time."""
        return DataLoader(
            _WholeVolumes(self.val_volumes),
            batch_size=1,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=_first,
        )
