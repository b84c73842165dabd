"""NeuroVFM-style preparation of a head MRI or CT: the same steps on numpy, torch CPU and CUDA.

NeuroVFM (a neuroimaging foundation model) reads a scan with ``load_image`` and hands it to
``prepare_for_inference(image, mode=...)``; this module keeps that API and its outputs, and fixes
how the slice axis is found. For one volume, or a batch of volumes on one grid:

1. **Reorient to RPI** (nibabel's convention: ``i`` grows to the Right, ``j`` to Posterior, ``k``
   to Inferior), exactly. The flips and the permutation are folded into the indices of step 3, so
   the input is never copied to reorient it.
2. **Find the slice axis** from the geometry (:func:`find_slice_axis`): the axis with the largest
   spacing; near-isotropic volumes get ``isotropic_plane``; ``slice_axis=`` overrides.
3. **Resample** (trilinear, separable) to ``in_plane_mm`` in-plane and ``through_plane_mm`` across
   slices, on the grid of :func:`brrrr.core.resample.grid_for_spacing` (same axis directions, same
   field-of-view centre), then centre-crop (``fit="crop"``, NeuroVFM's choice) or centre-pad
   (``fit="pad"``) every axis to a multiple of ``divisible_by`` = (4, 16, 16) for (D, H, W). A
   crop is folded into the grid, so cropped voxels are never computed. Samples within half a voxel
   outside the input take the edge value (as ITK, which NeuroVFM uses, and MONAI's ``"border"``).
4. **Lay out** as ``(D, H, W)``, ``D`` the slice axis, in NeuroVFM's order: axial
   ``(I→S … , P, R)`` = RPI axes ``(k, j, i)``; coronal ``(j, k, i)``; sagittal ``(i, j, k)``.
5. **Intensities.** MRI: clip to the 0.5 and 99.5 percentiles and scale to [0, 1]; foreground =
   above the 10th percentile (``numpy.percentile``'s linear rule, exact, per volume, over the
   cropped volume). CT (Hounsfield units): three windows, brain (width 80, level 40), blood
   (200, 80) and bone (2800, 600), each clipped and scaled to [0, 1]; foreground = HU > −500.
   Non-finite voxels count as background (0 for MRI, −1024 HU for CT).
6. With ``fit="pad"``, padding is added last: image 0, mask ``False``, so it does not shift the
   percentiles.

Why not :func:`brrrr.core.resample.resample`: its separable path needs a grid with the same axis
order as the input, and the RPI layout permutes axes, which sends it to the oblique path. On the
256×256×180 int16 benchmark volume (2 shared cores) core's call took 323 ms; the permuted separable
path here (:mod:`brrrr.preprocess.neurovfm._ops`), which also skips identity axes, reads regular
samples as strided views and never computes cropped voxels, takes about 5 ms. Exact percentiles use
a bracketed selection on the float32 bits (about 5 ms instead of 15 ms for ``numpy.percentile``);
CUDA sorts. The whole MRI preparation of that volume takes 11–16 ms on the CPU.

Reading the ``.nii.gz`` takes about three times as long as preparing it, so
:func:`load_and_prepare` overlaps the two: a background thread inflates the file
(:func:`brrrr.core.io.nifti.stream_nifti`) while each output slab is resampled as soon as the input
slices it reads are in, and a sorted copy of it is kept, from which the exact percentiles of the
whole volume follow in well under a millisecond (:mod:`brrrr.preprocess.neurovfm._stream`). The
slab-by-slab arithmetic is the whole-volume arithmetic, so the outputs are identical.

Example:
    >>> from brrrr.core import samples
    >>> from brrrr.preprocess.neurovfm.prepare import prepare_for_inference
    >>> volume = samples.phantom(shape=(64, 64, 20), spacing=(3.0, 3.0, 6.0))
    >>> img, mask, view = prepare_for_inference(volume, mode="mri")
    >>> img.shape, mask.shape, view.plane
    ((1, 28, 192, 192), (28, 192, 192), 'axial')
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from brrrr.core import load_volume
from brrrr.core.errors import UnsupportedFormatError
from brrrr.core.io.nifti import stream_nifti
from brrrr.core.volume import Volume
from brrrr.preprocess.errors import PreparationError
from brrrr.preprocess.neurovfm._steps import prepare_array
from brrrr.preprocess.neurovfm._stream import prepare_stream
from brrrr.preprocess.neurovfm.settings import BACKGROUND, Mode, Plane, PrepareSettings, View

if TYPE_CHECKING:
    import torch

__all__ = ["load_and_prepare", "load_image", "prepare_array", "prepare_for_inference"]


def load_image(path: str | os.PathLike[str], *, dtype: np.dtype | str | None = None) -> Volume:
    """Read a NIfTI, MGZ or DICOM file, or a DICOM folder, through :func:`brrrr.core.load_volume`.

    Args:
        path: The file or DICOM folder.
        dtype: Convert voxels while reading (``None`` keeps the stored type; CT keeps HU).

    Returns:
        The :class:`~brrrr.core.Volume`, ``(I, J, K)`` or ``(C, I, J, K)``.
    """
    return load_volume(path, dtype=dtype)


def prepare_for_inference(
    volume: Volume | Sequence[Volume],
    *,
    mode: Mode,
    slice_axis: int | Plane | None = None,
    device: str | torch.device | None = None,
    settings: PrepareSettings | None = None,
) -> tuple[Any, Any, View]:
    """Reorient, resample, crop/pad and normalise a volume for NeuroVFM-style models.

    Args:
        volume: A :class:`~brrrr.core.Volume` ``(I, J, K)``; a ``(B, I, J, K)`` volume or a
            sequence of volumes on one grid is a batch (each item prepared on its own).
        mode: ``"mri"`` or ``"ct"`` (voxels in HU).
        slice_axis: Override of the slice axis: an axis (0, 1, 2) of ``volume``'s array, or a
            plane name. ``None`` finds it from the spacing (:func:`find_slice_axis`).
        device: Torch device (``"cpu"``, ``"cuda"``) to compute on; the results are torch
            tensors there. ``None`` computes with numpy and returns numpy arrays.
        settings: Sizes, fit and thresholds; default :class:`PrepareSettings`.

    Returns:
        ``(img_arrs, mask, view)``. ``img_arrs`` is float32 in [0, 1], ``(C, D, H, W)``
        (``(B, C, D, H, W)`` for a batch), ``C = 1`` for MRI and ``C = 3`` for CT (the brain,
        blood and bone windows in that order); ``D`` is the slice axis at
        ``through_plane_mm``, ``H, W`` are in-plane at ``in_plane_mm``. ``mask`` is bool
        ``(D, H, W)`` (``(B, D, H, W)``), ``True`` = foreground. ``view`` is the
        :class:`View` (plane, axes, output affine); ``view.index`` is NeuroVFM's integer.

    Raises:
        PreparationError: Unknown mode, volumes on different grids, or a volume smaller than
            one multiple of ``divisible_by`` with ``fit="crop"``.
    """
    if isinstance(volume, Volume):
        return prepare_array(
            volume.data,
            volume.affine,
            mode=mode,
            slice_axis=slice_axis,
            device=device,
            settings=settings,
            source=volume.source,
        )
    volumes = list(volume)
    if not volumes:
        raise PreparationError("an empty batch: give at least one volume")
    first = volumes[0]
    for other in volumes[1:]:
        if other.shape != first.shape or not np.allclose(other.affine, first.affine, atol=1e-5):
            raise PreparationError(
                f"a batch must share one grid: {first.shape} vs {other.shape}; prepare the "
                "volumes one at a time instead",
                path=other.source,
            )
    if any(v.data.ndim != 3 for v in volumes):
        raise PreparationError("a batch given as a sequence holds (I, J, K) volumes only")
    return prepare_array(
        np.stack([v.data for v in volumes]),
        first.affine,
        mode=mode,
        slice_axis=slice_axis,
        device=device,
        settings=settings,
        source=first.source,
    )


def load_and_prepare(
    path: str | os.PathLike[str],
    *,
    mode: Mode,
    slice_axis: int | Plane | None = None,
    device: str | torch.device | None = None,
    settings: PrepareSettings | None = None,
) -> tuple[Any, Any, View]:
    """``prepare_for_inference(load_image(path), ...)`` in one call, overlapping the two.

    For a 3-D NIfTI file prepared with numpy (``device=None``), a background thread inflates
    the voxels (:func:`brrrr.core.io.nifti.stream_nifti`) while this one resamples each output
    slab as soon as the input slices it reads have arrived, and sorts a copy of it for the
    percentiles. When the last byte is in, what is left is the intensity scaling, so on two
    cores the whole call takes little more than decompressing the file. The arithmetic is the
    same, slab by slab, so the results are identical to the two-step call. Other inputs (MGZ,
    DICOM, 4-D images, a torch ``device``) take the two-step path.

    Args:
        path: The file or DICOM folder, as :func:`load_image`.
        mode: As :func:`prepare_for_inference`.
        slice_axis: As :func:`prepare_for_inference`.
        device: As :func:`prepare_for_inference`.
        settings: As :func:`prepare_for_inference`.

    Returns:
        ``(img_arrs, mask, view)``, as :func:`prepare_for_inference`.

    Raises:
        VolumeReadError: The file is missing, corrupt or truncated (also when the fault is
            found only at the end of the gzip stream).
        PreparationError: As :func:`prepare_for_inference`.

    Example:
        >>> from brrrr.preprocess.neurovfm.prepare import load_and_prepare
        >>> img, mask, view = load_and_prepare("sub-01_T1w.nii.gz", mode="mri")  # doctest: +SKIP
    """
    settings = settings or PrepareSettings()
    if mode not in BACKGROUND:
        raise PreparationError(f"mode must be 'mri' or 'ct', got {mode!r}", path=path)
    if device is None and not Path(path).is_dir():
        try:
            stream = stream_nifti(path)
        except UnsupportedFormatError:  # not a NIfTI file: load_image's readers decide
            stream = None
        if stream is not None:
            with stream:
                if stream.data.ndim == 3:
                    return prepare_stream(
                        stream, mode=mode, slice_axis=slice_axis, settings=settings
                    )
                volume = stream.result()  # 4-D: read whole, prepared as a batch
            return prepare_for_inference(
                volume, mode=mode, slice_axis=slice_axis, settings=settings
            )
    return prepare_for_inference(
        load_image(path), mode=mode, slice_axis=slice_axis, device=device, settings=settings
    )
