"""nnU-Net v2 result folders as segmenters (extra ``brrrr-models[nnunet]``).

A trained nnU-Net v2 model is a folder holding ``plans.json``, ``dataset.json`` and
``fold_<n>/checkpoint_final.pth`` (one per trained fold; ``fold_all`` too), as
``nnUNetv2_train`` leaves it under ``nnUNet_results/DatasetXXX_Name/Trainer__Plans__Config``.
:class:`NnUNetSegmenter` checks the folder and reads ``dataset.json`` without importing
nnU-Net; the first prediction imports ``nnunetv2`` and builds its documented
``nnUNetPredictor`` (``initialize_from_trained_model_folder``, then
``predict_single_npy_array`` with probabilities), which runs nnU-Net's own preprocessing,
resampling, sliding window, mirroring and fold ensembling.

Channels: ``dataset.json``'s ``channel_names`` (``{"0": "DWI", "1": "ADC"}``) give the input
names, lower-cased (``dwi``, ``adc``); pass ``channels=`` to name them otherwise. Every channel
is first resampled onto the reference channel's grid (nnU-Net expects co-registered inputs on
one grid), then handed over in the axis order of nnU-Net's default reader (SimpleITK: the
array transposed to ``(z, y, x)``, spacing reversed), after reorientation to RAS when the
plans' reader is ``NibabelIOWithReorient``. The lesion probability comes back on the
reference grid.

Example:
    >>> segmenter = NnUNetSegmenter("nnUNet_results/Dataset001_Stroke/nnUNetTrainer__nnUNetPlans__3d_fullres")  # doctest: +SKIP
    >>> segmenter.channels  # doctest: +SKIP
    ('dwi', 'adc')
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from brrrr.core.errors import MissingDependencyError
from brrrr.core.volume import Volume
from brrrr.models.segmentation.errors import SegmentationError
from brrrr.models.segmentation.preprocessing import align_to_reference
from brrrr.models.segmentation.segmenter import Segmenter

__all__ = ["NnUNetSegmenter", "find_folds"]

_NEEDS = 'nnU-Net v2 models need nnunetv2: pip install "brrrr-models[nnunet]"'


def find_folds(
    folder: str | os.PathLike[str], *, checkpoint_name: str = "checkpoint_final.pth"
) -> list[int | str]:
    """The folds of a result folder that hold ``checkpoint_name`` (``fold_0`` → 0, ``fold_all`` → "all")."""
    folds: list[int | str] = []
    for path in sorted(Path(folder).glob("fold_*")):
        if not (path / checkpoint_name).is_file():
            continue
        suffix = path.name[len("fold_") :]
        folds.append(int(suffix) if suffix.isdigit() else suffix)
    return folds


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SegmentationError(
            f"an nnU-Net v2 result folder holds {path.name}; this one does not", path=path
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise SegmentationError(f"not valid JSON: {error}", path=path) from None
    if not isinstance(data, dict):
        raise SegmentationError("expected a JSON object", path=path)
    return data


class NnUNetSegmenter(Segmenter):
    """An nnU-Net v2 result folder (see the module docstring).

    Args:
        folder: The result folder (``plans.json``, ``dataset.json``, ``fold_*/``).
        folds: Folds to ensemble (default: every fold with a checkpoint).
        checkpoint_name: Checkpoint file in each fold folder.
        channels: Names of the input channels in ``dataset.json`` order (default: its
            ``channel_names``, lower-cased).
        lesion_label: The label whose probability is the lesion (a value of ``labels`` in
            ``dataset.json``, or its name).
        device: ``"cpu"`` or ``"cuda"``.
        tile_step_size: nnU-Net's sliding-window step (fraction of the patch).
        use_mirroring: nnU-Net's mirroring test-time augmentation.
        threshold: Mask threshold of the lesion probability.

    Raises:
        SegmentationError: Missing ``plans.json``/``dataset.json``, no fold checkpoints, a
            lesion label that ``dataset.json`` does not define, or channels that do not match.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        folds: Sequence[int | str] | None = None,
        checkpoint_name: str = "checkpoint_final.pth",
        channels: Sequence[str] | None = None,
        lesion_label: int | str = 1,
        device: str = "cpu",
        tile_step_size: float = 0.5,
        use_mirroring: bool = True,
        threshold: float = 0.5,
    ) -> None:
        root = Path(folder)
        if not root.is_dir():
            raise SegmentationError("no such nnU-Net result folder", path=root)
        self.plans = _read_json(root / "plans.json")
        self.dataset = _read_json(root / "dataset.json")
        found = find_folds(root, checkpoint_name=checkpoint_name)
        if folds is None:
            if not found:
                raise SegmentationError(
                    f"no fold_*/{checkpoint_name} in the nnU-Net result folder; train a fold "
                    "or pass checkpoint_name=",
                    path=root,
                )
            folds = found
        for fold in folds:
            if not (root / f"fold_{fold}" / checkpoint_name).is_file():
                raise SegmentationError(
                    f"fold {fold} has no {checkpoint_name}", path=root / f"fold_{fold}"
                )
        names = self.dataset.get("channel_names", self.dataset.get("modality"))
        if not isinstance(names, Mapping) or not names:
            raise SegmentationError("dataset.json has no channel_names", path=root / "dataset.json")
        declared = [str(names[k]) for k in sorted(names, key=lambda k: int(k))]
        if channels is None:
            channels = [n.lower() for n in declared]
        elif len(channels) != len(declared):
            raise SegmentationError(
                f"the model reads {len(declared)} channels ({', '.join(declared)}); "
                f"channels= names {len(channels)}",
                path=root / "dataset.json",
            )
        labels = self.dataset.get("labels", {})
        if isinstance(lesion_label, str):
            if lesion_label not in labels:
                raise SegmentationError(
                    f"dataset.json defines no label {lesion_label!r} (labels: {sorted(labels)})",
                    path=root / "dataset.json",
                )
            lesion_label = labels[lesion_label]
        values = [v for v in labels.values() if isinstance(v, int)]
        if int(lesion_label) not in values or int(lesion_label) == 0:
            raise SegmentationError(
                f"lesion_label {lesion_label} is not a foreground label of dataset.json "
                f"(labels: {labels})",
                path=root / "dataset.json",
            )
        super().__init__(channels, threshold=threshold, name=f"nnunet:{root.name}", source=root)
        self.folder = root
        self.folds = list(folds)
        self.checkpoint_name = checkpoint_name
        self.lesion_label = int(lesion_label)
        self.device = device
        self.tile_step_size = float(tile_step_size)
        self.use_mirroring = bool(use_mirroring)
        self._predictor: Any = None

    @property
    def reader(self) -> str:
        """The plans' ``image_reader_writer`` (decides the axis order nnU-Net expects)."""
        return str(self.plans.get("image_reader_writer", "SimpleITKIO"))

    def predictor(self) -> Any:
        """nnU-Net's ``nnUNetPredictor`` for this folder, built on first use.

        Raises:
            MissingDependencyError: ``nnunetv2`` is not installed.
            SegmentationError: nnU-Net cannot load the folder (names it).
        """
        if self._predictor is not None:
            return self._predictor
        try:
            import torch
            from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
        except ImportError:
            raise MissingDependencyError(_NEEDS) from None
        where = torch.device(self.device)
        predictor = nnUNetPredictor(
            tile_step_size=self.tile_step_size,
            use_gaussian=True,
            use_mirroring=self.use_mirroring,
            perform_everything_on_device=where.type == "cuda",
            device=where,
            verbose=False,
            verbose_preprocessing=False,
            allow_tqdm=False,
        )
        try:
            predictor.initialize_from_trained_model_folder(
                str(self.folder), use_folds=tuple(self.folds), checkpoint_name=self.checkpoint_name
            )
        except (RuntimeError, KeyError, ValueError) as error:
            raise SegmentationError(
                f"nnU-Net cannot load this result folder: {type(error).__name__}: "
                f"{str(error).splitlines()[0] if str(error) else ''}",
                path=self.folder,
            ) from None
        self._predictor = predictor
        return predictor

    def predict(self, volumes: Mapping[str, Volume], *, reference: Volume) -> Volume:
        """nnU-Net's lesion probability, on the reference grid (or its RAS reorientation)."""
        predictor = self.predictor()
        aligned = align_to_reference(volumes, reference=self.reference)
        if self.reader == "NibabelIOWithReorient":
            aligned = {k: v.reorient("RAS") for k, v in aligned.items()}
        grid = aligned[self.reference]
        # nnU-Net's readers hand over (z, y, x) arrays of a NIfTI's (i, j, k) voxels.
        stack = np.stack([np.asarray(aligned[c].data).transpose(2, 1, 0) for c in self.channels])
        properties = {"spacing": [float(s) for s in reversed(grid.spacing)]}
        try:
            _, probabilities = predictor.predict_single_npy_array(
                np.ascontiguousarray(stack, dtype=np.float32), properties, None, None, True
            )
        except RuntimeError as error:
            raise SegmentationError(
                f"nnU-Net prediction failed: {str(error).splitlines()[0]}", path=self.folder
            ) from None
        lesion = np.asarray(probabilities[self.lesion_label], dtype=np.float32).transpose(2, 1, 0)
        return Volume(np.ascontiguousarray(lesion), grid.affine, metadata={"grid": "nnunet"})
