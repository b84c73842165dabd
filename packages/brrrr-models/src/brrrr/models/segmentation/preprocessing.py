"""Getting named input volumes ready for a segmenter: load, check, align, register, normalise.

Everything here works on :class:`brrrr.core.Volume` and world coordinates (RAS+, mm):

* :func:`load_inputs` reads each named channel (a path or a ``Volume``) as float32 and refuses
  missing channels, NaN/infinite voxels and multi-channel files, naming the file;
* :func:`align_to_reference` resamples every channel onto the grid of the reference channel
  by world position (``brrrr.core.resample``), refusing a channel whose field of view does
  not cover the reference's (a header that cannot be matched);
* :func:`register_rigid` aligns a channel that moved between acquisitions (FLAIR → DWI) with
  a rigid SimpleITK registration (extra ``brrrr-models[registration]``);
* :func:`normalize` applies a model's per-channel intensity :class:`Normalization`
  (percentile clip, then z-score over the nonzero voxels, a brain mask or everything);
* :func:`model_grid` is the grid a network runs on: the reference reoriented to the model's
  orientation and resampled to its voxel size, same field of view.

Example:
    >>> from brrrr.models.segmentation.synthetic import synthetic_stroke_case
    >>> case = synthetic_stroke_case(0, shape=(40, 48, 40), spacing=4.0)
    >>> volumes = load_inputs(case.inputs(), channels=("dwi", "adc"))
    >>> sorted(align_to_reference(volumes, reference="dwi"))
    ['adc', 'dwi']
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from brrrr.core.errors import MissingDependencyError
from brrrr.core.geometry import reorientation
from brrrr.core.resample import grid_for_spacing, resample
from brrrr.core.volume import Volume
from brrrr.models.segmentation.errors import SegmentationError

if TYPE_CHECKING:
    import SimpleITK

__all__ = [
    "GRID_ATOL_MM",
    "InputLike",
    "Normalization",
    "RigidRegistration",
    "align_to_reference",
    "check_overlap",
    "field_of_view_overlap",
    "load_channel",
    "load_inputs",
    "model_grid",
    "normalize",
    "on_grid",
    "register_rigid",
    "same_grid",
    "to_sitk",
]

#: A named input: a volume in memory or the path of a file ``brrrr.core.load_volume`` reads.
InputLike = Volume | str | os.PathLike[str]

#: Two grids are the same when their shapes are equal and affines differ by at most this (mm).
GRID_ATOL_MM = 1e-4


def _where(volume: Volume, name: str) -> tuple[str, str | None]:
    """How to name a channel in a message, and the file to attach to the error."""
    if volume.source:
        return f"the {name} image", volume.source
    return f"the {name} volume (in memory)", None


def load_channel(value: InputLike, *, name: str) -> Volume:
    """Load one input channel as a float32 ``(I, J, K)`` volume and check its voxels.

    Args:
        value: A :class:`~brrrr.core.Volume` or a path ``brrrr.core.load_volume`` can read.
        name: The channel's name (``"dwi"``, ``"adc"``…), used in messages.

    Returns:
        The volume (float32, 3D; a single-channel 4D file is squeezed).

    Raises:
        SegmentationError: More than one channel in the file, or NaN/infinite voxels.
        VolumeReadError: The file cannot be read.
    """
    if isinstance(value, Volume):
        volume = value
    else:
        from brrrr.core import load_volume

        volume = load_volume(value, dtype="float32")
    what, path = _where(volume, name)
    data = volume.data
    if data.ndim == 4:
        if data.shape[0] != 1:
            raise SegmentationError(
                f"{what} holds {data.shape[0]} volumes; give the {name} channel as one 3D image",
                path=path,
            )
        data = data[0]
    data = np.asarray(data, dtype=np.float32)
    finite = np.isfinite(data)
    if not finite.all():
        bad = int(data.size - np.count_nonzero(finite))
        raise SegmentationError(
            f"{what} has {bad} NaN or infinite voxels; fix or mask them before segmenting",
            path=path,
        )
    if data is volume.data:
        return volume
    return volume.with_data(data)


def load_inputs(
    inputs: Mapping[str, InputLike | None],
    *,
    channels: Sequence[str],
    optional_channels: Sequence[str] = (),
    source: str | os.PathLike[str] | None = None,
) -> dict[str, Volume]:
    """Load and check the channels a segmenter declares; other names are left out.

    Args:
        inputs: Named volumes or paths, e.g. ``{"dwi": "dwi.nii.gz", "adc": adc_volume}``.
        channels: Channel names that must be present (in the model's order).
        optional_channels: Channel names used when present.
        source: The model file that declares the channels, named when one is missing.

    Returns:
        ``{name: Volume}`` for the required channels, then the optional ones given.

    Raises:
        SegmentationError: A required channel is missing, or a channel fails
            :func:`load_channel`.
    """
    missing = [name for name in channels if inputs.get(name) is None]
    if missing:
        given = ", ".join(sorted(k for k, v in inputs.items() if v is not None)) or "none"
        raise SegmentationError(
            f"the model needs the channel(s) {', '.join(missing)} (it reads "
            f"{', '.join(channels)}); given: {given}",
            path=source,
        )
    names = [*channels, *(n for n in optional_channels if inputs.get(n) is not None)]
    volumes: dict[str, Volume] = {}
    for name in names:
        value = inputs[name]
        assert value is not None
        volumes[name] = load_channel(value, name=name)
    return volumes


# -- grids -----------------------------------------------------------------------------------
def same_grid(
    a: Volume | tuple[Sequence[int], np.ndarray],
    b: Volume | tuple[Sequence[int], np.ndarray],
    *,
    atol_mm: float = GRID_ATOL_MM,
) -> bool:
    """Whether two grids (volumes or ``(shape, affine)`` pairs) have the same shape and affine."""
    shape_a, affine_a = (a.shape, a.affine) if isinstance(a, Volume) else a
    shape_b, affine_b = (b.shape, b.affine) if isinstance(b, Volume) else b
    if tuple(int(n) for n in shape_a) != tuple(int(n) for n in shape_b):
        return False
    return bool(np.max(np.abs(np.asarray(affine_a) - np.asarray(affine_b))) <= atol_mm)


def field_of_view_overlap(volume: Volume, reference: Volume, *, step: int = 4) -> float:
    """Fraction of the reference's voxel centres that fall inside ``volume``'s field of view.

    Computed on every ``step``-th voxel along each axis; a voxel is inside when it lies
    within half a voxel of ``volume``'s outermost centres.
    """
    grids = [np.arange(0, n, step, dtype=np.float64) for n in reference.shape]
    index = np.stack(np.meshgrid(*grids, indexing="ij")).reshape(3, -1)
    vox2vox = np.linalg.inv(volume.affine) @ reference.affine
    inside = vox2vox[:3, :3] @ index + vox2vox[:3, 3:4]
    limits = np.asarray(volume.shape, dtype=np.float64)[:, None] - 0.5
    ok = np.all((inside >= -0.5) & (inside <= limits), axis=0)
    return float(np.count_nonzero(ok)) / ok.size


def on_grid(
    volume: Volume,
    reference: Volume,
    *,
    interpolation: Literal["nearest", "linear"] = "linear",
) -> Volume:
    """``volume`` resampled onto ``reference``'s grid by world position (itself if already there)."""
    if same_grid(volume, reference):
        return (
            volume
            if np.array_equal(volume.affine, reference.affine)
            else volume.with_data(volume.data, reference.affine)
        )
    data = resample(
        volume.data,
        volume.affine,
        target_shape=reference.shape,
        target_affine=reference.affine,
        interpolation=interpolation,
    )
    return volume.with_data(data, reference.affine)


def align_to_reference(
    volumes: Mapping[str, Volume], *, reference: str, min_overlap: float = 0.5
) -> dict[str, Volume]:
    """Every channel resampled (linear) onto the grid of the ``reference`` channel.

    Args:
        volumes: The loaded channels (:func:`load_inputs`).
        reference: Name of the channel whose grid the others are brought onto.
        min_overlap: Smallest fraction of the reference's field of view another channel must
            cover (:func:`field_of_view_overlap`); below it the headers cannot be matched.

    Returns:
        ``{name: Volume}``, all on the reference grid, float32.

    Raises:
        SegmentationError: No ``reference`` channel, or a channel that covers too little of
            the reference (names the file and both grids).
    """
    if reference not in volumes:
        raise SegmentationError(f"no {reference!r} channel to align the others onto")
    target = volumes[reference]
    aligned: dict[str, Volume] = {}
    for name, volume in volumes.items():
        if name != reference:
            check_overlap(volume, target, name=name, reference=reference, min_overlap=min_overlap)
        moved = on_grid(volume, target)
        aligned[name] = moved.with_data(np.asarray(moved.data, dtype=np.float32))
    return aligned


def check_overlap(
    volume: Volume,
    target: Volume,
    *,
    name: str,
    reference: str,
    min_overlap: float = 0.5,
) -> None:
    """Refuse a channel whose field of view covers less than ``min_overlap`` of the reference's.

    Raises:
        SegmentationError: Naming the channel's file, both grids and what to check.
    """
    if same_grid(volume, target):
        return
    overlap = field_of_view_overlap(volume, target)
    if overlap < min_overlap:
        what, path = _where(volume, name)
        raise SegmentationError(
            f"{what} covers only {100 * overlap:.0f}% of the {reference} image's field "
            f"of view (shape {volume.shape}, origin {_mm(volume.origin)} vs "
            f"{target.shape}, {_mm(target.origin)}): the two headers place them in "
            "different parts of space. Check that both belong to the same scan "
            "session, or register them first",
            path=path,
        )


def _mm(point: Sequence[float]) -> str:
    return "(" + ", ".join(f"{p:.1f}" for p in point) + ") mm"


def model_grid(
    reference: Volume, *, spacing_mm: float | Sequence[float] | None, orientation: str = "RAS"
) -> tuple[tuple[int, int, int], np.ndarray]:
    """The grid a network runs on: ``reference`` reoriented, then at ``spacing_mm``.

    The reorientation is exact (flips and permutations), so a reoriented copy of an image
    gives the network the same array; the field of view's centre is kept.

    Args:
        reference: The reference channel.
        spacing_mm: The model's voxel size; ``None`` keeps the reference's.
        orientation: The model's axis orientation code.

    Returns:
        ``(shape, affine)``.
    """
    plan = reorientation(reference.affine, orientation, shape=reference.shape)
    shape, affine = plan.output_shape, plan.transform_affine(reference.affine)
    if spacing_mm is None:
        return shape, affine
    return grid_for_spacing(shape, affine, spacing_mm)


# -- intensities -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Normalization:
    """How one channel's intensities are normalised before the network sees them.

    Attributes:
        method: ``"zscore"`` (subtract the mean, divide by the standard deviation of the
            region) or ``"none"``.
        region: Voxels the statistics come from and that keep a value (others become 0):
            ``"nonzero"`` (the channel's nonzero voxels, for brain-extracted images),
            ``"brain"`` (a brain mask given with the inputs as channel ``"brain"``, else the
            reference channel's nonzero voxels) or ``"all"``.
        clip_percentiles: Clip to these percentiles of the region first (``None``: no clip).
    """

    method: Literal["zscore", "none"] = "zscore"
    region: Literal["nonzero", "brain", "all"] = "nonzero"
    clip_percentiles: tuple[float, float] | None = (0.5, 99.5)

    def __post_init__(self) -> None:
        if self.method not in ("zscore", "none"):
            raise SegmentationError(
                f"normalisation method must be zscore or none, got {self.method!r}"
            )
        if self.region not in ("nonzero", "brain", "all"):
            raise SegmentationError(
                f"normalisation region must be nonzero, brain or all, got {self.region!r}"
            )
        if self.clip_percentiles is not None:
            low, high = self.clip_percentiles
            if not 0 <= low < high <= 100:
                raise SegmentationError(
                    f"clip_percentiles must be 0 <= low < high <= 100, got {self.clip_percentiles}"
                )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Normalization:
        """Build from a config mapping; unknown keys are an error."""
        unknown = sorted(set(data) - {"method", "region", "clip_percentiles"})
        if unknown:
            raise SegmentationError(f"unknown normalisation setting(s) {unknown}")
        clip = data.get("clip_percentiles", (0.5, 99.5))
        return cls(
            method=data.get("method", "zscore"),
            region=data.get("region", "nonzero"),
            clip_percentiles=None if clip is None else (float(clip[0]), float(clip[1])),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        clip = None if self.clip_percentiles is None else list(self.clip_percentiles)
        return {"method": self.method, "region": self.region, "clip_percentiles": clip}


def normalize(
    array: np.ndarray, spec: Normalization, *, brain: np.ndarray | None = None
) -> np.ndarray:
    """Normalise one channel ``(I, J, K)`` as ``spec`` says; returns a new float32 array.

    Args:
        array: The channel's voxels.
        spec: The :class:`Normalization`.
        brain: Boolean ``(I, J, K)`` mask for ``region="brain"`` (else the nonzero voxels).

    Returns:
        The normalised channel; voxels outside the region are 0.
    """
    data = np.asarray(array, dtype=np.float32)
    if spec.region == "all":
        region = np.ones(data.shape, dtype=bool)
    elif spec.region == "brain" and brain is not None:
        region = np.asarray(brain, dtype=bool)
    else:
        region = data != 0
    values = data[region]
    if values.size == 0:
        return np.zeros_like(data)
    if spec.clip_percentiles is not None:
        low, high = np.percentile(values, spec.clip_percentiles)
        data = np.clip(data, low, high)
        values = data[region]
    if spec.method == "zscore":
        mean = float(values.mean(dtype=np.float64))
        std = float(values.std(dtype=np.float64))
        data = (data - mean) / (std if std > 0 else 1.0)
    return np.where(region, data, 0.0).astype(np.float32)


# -- registration ----------------------------------------------------------------------------
@dataclass(frozen=True)
class RigidRegistration:
    """The result of :func:`register_rigid`.

    Attributes:
        volume: The moving image resampled onto the fixed grid through the transform.
        matrix: (4, 4) rigid map from fixed world (RAS+ mm) to moving world.
        metric: Final Mattes mutual information (lower is better).
    """

    volume: Volume
    matrix: np.ndarray
    metric: float


_LPS = np.diag([-1.0, -1.0, 1.0])


def _sitk() -> Any:
    try:
        import SimpleITK as sitk
    except ImportError:
        raise MissingDependencyError(
            'rigid registration needs SimpleITK: pip install "brrrr-models[registration]"'
        ) from None
    return sitk


def to_sitk(volume: Volume) -> SimpleITK.Image:
    """A SimpleITK image of a 3D volume (ITK works in LPS; index ``(x, y, z)`` = ``(i, j, k)``)."""
    sitk = _sitk()
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(volume.data).transpose(2, 1, 0)))
    spacing = np.asarray(volume.spacing)
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(float(v) for v in _LPS @ volume.affine[:3, 3]))
    direction = _LPS @ (volume.affine[:3, :3] / spacing)
    image.SetDirection(tuple(float(v) for v in direction.ravel()))
    return image


def register_rigid(
    moving: Volume,
    fixed: Volume,
    *,
    seed: int = 0,
    iterations: int = 200,
    shrink_factors: Sequence[int] = (4, 2, 1),
) -> RigidRegistration:
    """Rigidly register ``moving`` onto ``fixed`` (Mattes mutual information, SimpleITK).

    A six-parameter Euler transform, initialised at the images' geometric centres, optimised
    by regular-step gradient descent over a three-level pyramid; suits images of one head from
    one session (FLAIR → DWI). Needs the extra ``brrrr-models[registration]``.

    Args:
        moving: The image to move (e.g. FLAIR).
        fixed: The image whose grid the result is on (e.g. DWI).
        seed: Seed of the metric's random sampling (deterministic result).
        iterations: Optimiser iterations per level.
        shrink_factors: Pyramid levels (voxel subsampling factors).

    Returns:
        The :class:`RigidRegistration`.

    Raises:
        MissingDependencyError: SimpleITK is not installed.
        SegmentationError: The registration fails (names the moving image's file).
    """
    sitk = _sitk()
    fixed_image = sitk.Cast(to_sitk(fixed), sitk.sitkFloat32)
    moving_image = sitk.Cast(to_sitk(moving), sitk.sitkFloat32)
    initial = sitk.CenteredTransformInitializer(
        fixed_image,
        moving_image,
        sitk.Euler3DTransform(),
        sitk.CenteredTransformInitializerFilter.GEOMETRY,
    )
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(0.3, seed)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0,
        minStep=1e-4,
        numberOfIterations=iterations,
        relaxationFactor=0.6,
        gradientMagnitudeTolerance=1e-8,
    )
    method.SetOptimizerScalesFromPhysicalShift()
    levels = [int(f) for f in shrink_factors]
    method.SetShrinkFactorsPerLevel(levels)
    method.SetSmoothingSigmasPerLevel([max(0.0, f / 2.0) for f in levels])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    method.SetInitialTransform(initial, inPlace=False)
    try:
        transform = method.Execute(fixed_image, moving_image)
    except RuntimeError as error:
        _, path = _where(moving, "moving")
        raise SegmentationError(f"rigid registration failed: {error}", path=path) from None
    resampled = sitk.Resample(moving_image, fixed_image, transform, sitk.sitkLinear, 0.0)
    data = sitk.GetArrayFromImage(resampled).transpose(2, 1, 0).astype(np.float32)
    # ITK maps fixed LPS points to moving LPS points; express it in RAS+.
    euler = sitk.Euler3DTransform(sitk.CompositeTransform(transform).GetNthTransform(0))
    rotation = np.asarray(euler.GetMatrix()).reshape(3, 3)
    centre = np.asarray(euler.GetCenter())
    offset = np.asarray(euler.GetTranslation()) + centre - rotation @ centre
    matrix = np.eye(4)
    matrix[:3, :3] = _LPS @ rotation @ _LPS
    matrix[:3, 3] = _LPS @ offset
    volume = moving.with_data(np.ascontiguousarray(data), fixed.affine)
    volume.metadata["registered_to"] = fixed.source or "reference"
    return RigidRegistration(volume, matrix, float(method.GetMetricValue()))
