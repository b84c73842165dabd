"""NeuroVFM's ``ImageDataset``: one prepared, optionally cropped and augmented, tokenised image per index.

The dataset reads a root laid out as in :mod:`brrrr.preprocess.neurovfm.metadata` and returns,
per image, NeuroVFM's dict:

=============  ==========================================================================
``img``        float32 ``(N, pd·ph·pw)`` tokens in [0, 1] (``(N, 1024)`` for 4×16×16), or
               ``(1, D, H, W)`` with ``tokenize=False``
``coords``     int32 ``(N, 3)``: ``(d, h, w)`` of each token in token space
``filtered``   uint8 ``(N,)``: 1 = background token (see ``background_rule``)
``size``       int32 ``(3,)``: the grid in tokens ``(D/pd, H/ph, W/pw)``
``path``       the source file or DICOM folder (absolute)
``label``      the study's label: a number, a list for multilabel, or -1 (unlabelled)
``study``      study id
``mode``       ``"mri"`` or ``"ct"``
``window``     CT window drawn for this item (``"brain"``, ``"blood"``, ``"bone"``), or None
=============  ==========================================================================

With ``tokenize=False`` there is no ``coords``/``filtered``; ``mask`` (uint8
``(D, H, W)``, 1 = foreground) is returned instead.

Randomness (CT window, crop, flips) comes from one numpy generator per item, seeded
from torch's global generator, so each ``DataLoader`` worker draws differently and
``torch.manual_seed`` makes a run repeatable. (NeuroVFM draws from numpy's global
state, which forked workers share: every worker repeats the same "random" choices.)

Example:
    >>> dataset = ImageDataset("/data", study_labels="/data/labels.csv")  # doctest: +SKIP
    >>> sampler = StudyAwareBatchSampler(dataset, 8, seed=0)              # doctest: +SKIP
    >>> loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_tokens)  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from brrrr.preprocess.errors import DatasetError
from brrrr.preprocess.neurovfm.cache import CacheManager
from brrrr.preprocess.neurovfm.metadata import METADATA_FILE, DatasetMetadata, ImageRecord
from brrrr.preprocess.neurovfm.prepare import load_and_prepare
from brrrr.preprocess.neurovfm.settings import CT_WINDOWS, PrepareSettings
from brrrr.preprocess.neurovfm.tokenize import BackgroundRule, tokenize

__all__ = ["ImageDataset", "Label", "load_study_labels"]

Label = int | float | list[int] | list[float]


def _number(text: str, *, path: Path, where: str) -> int | float:
    try:
        value = float(text)
    except ValueError:
        raise DatasetError(f"{where}: {text!r} is not a number", path=path) from None
    return int(value) if value.is_integer() else value


def load_study_labels(
    source: str | os.PathLike[str] | Mapping[str, Label],
) -> tuple[dict[str, Label], list[str]]:
    """Study-level labels from a CSV file, a JSON file or a mapping.

    CSV: a header row; the first column is the study id, every other column a label
    (binary, multiclass or real). One label column gives a number per study, several
    give a list (multilabel). JSON: ``{"study": label}`` with a number or a list.

    Args:
        source: Path to ``.csv`` / ``.json``, or a mapping study id → label.

    Returns:
        ``(labels, names)``: study id → label, and the label column names (``["label"]``
        for JSON and mappings).

    Raises:
        DatasetError: Unknown suffix, no label column, a non-numeric cell, a
            duplicated study, or rows of different lengths.
    """
    if isinstance(source, Mapping):
        return {str(k): v for k, v in source.items()}, ["label"]
    path = Path(source)
    if not path.is_file():
        raise DatasetError("study label file not found", path=path)
    if path.suffix.lower() == ".json":
        try:
            doc = json.loads(path.read_text())
        except ValueError as exc:
            raise DatasetError(f"not valid JSON: {exc}", path=path) from None
        if not isinstance(doc, dict):
            raise DatasetError('expected an object {"study": label, ...}', path=path)
        return {str(k): v for k, v in doc.items()}, ["label"]
    if path.suffix.lower() != ".csv":
        raise DatasetError("study labels must be a .csv or .json file", path=path)
    with open(path, newline="") as handle:
        rows = [row for row in csv.reader(handle) if row]
    if not rows or len(rows[0]) < 2:
        raise DatasetError(
            "expected a header row 'study_id,label_a[,label_b…]' and one row per study",
            path=path,
        )
    names = [name.strip() for name in rows[0][1:]]
    labels: dict[str, Label] = {}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(rows[0]):
            raise DatasetError(
                f"line {line} has {len(row)} cells, the header {len(rows[0])}", path=path
            )
        study = row[0].strip()
        if study in labels:
            raise DatasetError(f"line {line}: study {study!r} appears twice", path=path)
        values = [_number(cell.strip(), path=path, where=f"line {line}") for cell in row[1:]]
        labels[study] = values[0] if len(values) == 1 else values
    return labels, names


def _token_foreground(mask: np.ndarray, patch: tuple[int, int, int]) -> np.ndarray:
    """``(D/pd, H/ph, W/pw)`` bool: the token holds at least one foreground voxel."""
    d, h, w = (n // p for n, p in zip(mask.shape, patch, strict=True))
    blocks = mask.reshape(d, patch[0], h, patch[1], w, patch[2])
    return np.asarray(blocks.max(axis=(1, 3, 5)) > 0)


class ImageDataset(Dataset[dict[str, Any]]):
    """Prepared images of a dataset root as NeuroVFM's token dicts (see the module docstring).

    A map-style ``torch.utils.data.Dataset`` (torch is imported with this module,
    which exists to produce tensors).

    Args:
        root: Dataset root holding ``metadata.json`` (and ``cache/`` with ``use_cache``).
        use_cache: Read memory-mapped uint8 volumes from the cache (built by
            :meth:`CacheManager.build`); otherwise load and prepare each source file
            on every access (:func:`~brrrr.preprocess.neurovfm.prepare.load_and_prepare`; float32,
            no quantisation).
        ct_window_probs: Probabilities of drawing the brain, blood and bone windows
            for a CT image; must sum to 1.
        random_crop: Crop a random token-aligned box of at most ``max_crop_tokens``
            tokens per axis holding more than ``min_crop_foreground`` foreground
            tokens (5 tries, else the whole volume), as NeuroVFM does.
        augment: Random in-plane transpose (H ↔ W) and flips of each axis, p = 0.5 each.
        tokenize: Return ``(N, pd·ph·pw)`` tokens; otherwise ``(1, D, H, W)`` volumes.
        study_labels: CSV/JSON path or mapping (:func:`load_study_labels`).
            Studies without a label get -1 (a list of -1 for multilabel).
        max_crop_tokens: Largest crop, in tokens ``(d, h, w)``.
        min_crop_foreground: Smallest fraction of foreground tokens in a crop.
        patch: Token size ``(pd, ph, pw)`` in voxels.
        background_rule: Which tokens ``filtered`` marks as background
            (:func:`brrrr.preprocess.neurovfm.tokenize.tokenize`): ``"all"`` (no foreground
            voxel), a fraction τ, or ``"any"`` (NeuroVFM's rule).
        settings: Preparation settings of the cache (or of on-the-fly preparation).

    Raises:
        MetadataError: ``root/metadata.json`` is missing or malformed.
        DatasetError: Bad probabilities, crop sizes, or label file.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        use_cache: bool = True,
        ct_window_probs: Sequence[float] = (0.7, 0.15, 0.15),
        random_crop: bool = False,
        augment: bool = False,
        tokenize: bool = True,
        study_labels: str | os.PathLike[str] | Mapping[str, Label] | None = None,
        max_crop_tokens: tuple[int, int, int] = (20, 20, 20),
        min_crop_foreground: float = 0.1,
        patch: tuple[int, int, int] = (4, 16, 16),
        background_rule: BackgroundRule = "all",
        settings: PrepareSettings | None = None,
    ) -> None:
        self.root = Path(root)
        probs = np.asarray(ct_window_probs, dtype=np.float64)
        if probs.shape != (len(CT_WINDOWS),) or probs.min() < 0 or abs(probs.sum() - 1) > 1e-6:
            raise DatasetError(
                f"ct_window_probs must be {len(CT_WINDOWS)} non-negative numbers summing to 1 "
                f"(brain, blood, bone), got {tuple(ct_window_probs)}"
            )
        if min(max_crop_tokens) < 1 or min(patch) < 1:
            raise DatasetError(f"max_crop_tokens {max_crop_tokens} and patch {patch} must be ≥ 1")
        self.ct_window_probs = probs / probs.sum()
        self.use_cache = use_cache
        self.random_crop = random_crop
        self.augment = augment
        self.tokenize = tokenize
        self.max_crop_tokens = (
            int(max_crop_tokens[0]),
            int(max_crop_tokens[1]),
            int(max_crop_tokens[2]),
        )
        self.min_crop_foreground = min_crop_foreground
        self.patch = (int(patch[0]), int(patch[1]), int(patch[2]))
        self.background_rule = background_rule
        self.settings = settings or PrepareSettings()
        self.metadata = DatasetMetadata.load(self.root / METADATA_FILE)
        self.images: tuple[ImageRecord, ...] = self.metadata.images
        self.cache = CacheManager(self.root, settings=self.settings) if use_cache else None
        self.labels: dict[str, Label] = {}
        self.label_names: list[str] = []
        if study_labels is not None:
            self.labels, self.label_names = load_study_labels(study_labels)
        width = len(self.label_names)
        self._missing_label: Label = -1 if width <= 1 else [-1] * width

    # -- what the sampler reads ------------------------------------------------------
    @property
    def study_ids(self) -> list[str]:
        """The study of each index, ``(len(self),)``."""
        return [record.study for record in self.images]

    @property
    def token_counts(self) -> list[int]:
        """Tokens of each index before cropping, from the cache manifest, ``(len(self),)``.

        Raises:
            DatasetError: ``use_cache=False`` (the counts would need every image prepared).
            CacheMissError: An image is not cached.
        """
        if self.cache is None:
            raise DatasetError(
                "token_counts needs the cache (shapes come from its manifest): build it and "
                "use ImageDataset(root, use_cache=True)"
            )
        counts = self.cache.token_counts(patch=self.patch)
        for record in self.images:
            if record.name not in counts:
                self.cache.record(record.study, record.image)  # raises CacheMissError
        return [counts[record.name] for record in self.images]

    def __len__(self) -> int:
        return len(self.images)

    # -- one item --------------------------------------------------------------------
    def _volume(
        self, record: ImageRecord, window: str | None
    ) -> tuple[np.ndarray, np.ndarray, str]:
        """``(image (D, H, W) uint8 or float32, mask (D, H, W) uint8, source path)``."""
        source = str(self.root / record.path)
        if self.cache is not None:
            entry = self.cache.load_image(
                record.study, record.image, window=window if window is not None else "mri"
            )
            return entry.data, entry.mask, source
        img, mask, _ = load_and_prepare(source, mode=record.mode, settings=self.settings)
        channel = 0 if window is None else list(CT_WINDOWS).index(window)
        return img[channel], np.asarray(mask, dtype=np.uint8), source

    def _crop_box(self, mask: np.ndarray, rng: np.random.Generator) -> tuple[slice, ...]:
        grid = [n // p for n, p in zip(mask.shape, self.patch, strict=True)]
        whole = tuple(slice(0, g * p) for g, p in zip(grid, self.patch, strict=True))
        if not self.random_crop:
            return whole
        foreground = _token_foreground(mask[whole], self.patch)
        for _ in range(5):
            size = [
                int(rng.integers(1, min(m, g) + 1))
                for m, g in zip(self.max_crop_tokens, grid, strict=True)
            ]
            start = [int(rng.integers(0, g - s + 1)) for g, s in zip(grid, size, strict=True)]
            box = tuple(slice(a, a + s) for a, s in zip(start, size, strict=True))
            if foreground[box].mean() > self.min_crop_foreground:
                return tuple(
                    slice(b.start * p, b.stop * p) for b, p in zip(box, self.patch, strict=True)
                )
        return whole

    def _augment(
        self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        draws = rng.random(4)
        if draws[0] < 0.5 and self.patch[1] == self.patch[2]:
            image, mask = image.transpose(0, 2, 1), mask.transpose(0, 2, 1)
        flips = tuple(axis for axis in range(3) if draws[axis + 1] < 0.5)
        if flips:
            image, mask = np.flip(image, flips), np.flip(mask, flips)
        return image, mask

    def __getitem__(self, index: int) -> dict[str, Any]:
        """The item at ``index`` (see the module docstring for the keys and shapes)."""
        record = self.images[index]
        rng = np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
        window = None
        if record.mode == "ct":
            window = list(CT_WINDOWS)[int(rng.choice(len(CT_WINDOWS), p=self.ct_window_probs))]
        image, mask, source = self._volume(record, window)
        box = self._crop_box(mask, rng)
        image, mask = image[box], mask[box]
        if self.augment:
            image, mask = self._augment(image, mask, rng)
        size = [n // p for n, p in zip(image.shape, self.patch, strict=True)]
        item: dict[str, Any] = {
            "size": torch.tensor(size, dtype=torch.int32),
            "path": source,
            "label": self.labels.get(record.study, self._missing_label),
            "study": record.study,
            "mode": record.mode,
            "window": window,
        }
        scale = np.float32(1 / 255) if image.dtype == np.uint8 else None
        if not self.tokenize:
            voxels = np.ascontiguousarray(image, dtype=np.float32)
            if scale is not None:
                voxels *= scale
            item["img"] = torch.from_numpy(voxels)[None]
            item["mask"] = torch.from_numpy(np.array(mask, dtype=np.uint8))
            return item
        # Tokenising the uint8 crop copies it out of the memory map at a quarter of the
        # bytes of float32; only the tokens are converted.
        # Cached masks hold only 0 and 1, so a bool view saves tokenize a comparison pass.
        foreground = mask.view(np.bool_) if mask.dtype == np.uint8 else mask
        tokens, coords, filtered, _ = tokenize(
            image, foreground, patch=self.patch, background_rule=self.background_rule
        )
        values = np.asarray(tokens, dtype=np.float32)
        if scale is not None:
            values *= scale
        item["img"] = torch.from_numpy(values)
        item["coords"] = torch.from_numpy(np.asarray(coords, dtype=np.int32))
        item["filtered"] = torch.from_numpy(np.asarray(filtered, dtype=np.uint8))
        return item

    def __repr__(self) -> str:
        studies = len(set(self.study_ids))
        return (
            f"ImageDataset(root={str(self.root)!r}, images={len(self)}, studies={studies}, "
            f"use_cache={self.use_cache}, tokenize={self.tokenize}, random_crop={self.random_crop}, "
            f"augment={self.augment}, labels={self.label_names or None})"
        )
