"""Ensembles of segmenters: mean probability, majority vote and STAPLE.

Every member segments the same inputs and returns its output on the reference input's grid
(a member working on another grid — another voxel size, orientation, or an external tool —
has already been brought back by :class:`~brrrr.models.segmentation.segmenter.Segmenter`),
so members combine voxel by voxel:

* ``"mean"``: the (optionally weighted) mean of the members' probabilities, thresholded;
* ``"majority"``: each member's mask is a vote; lesion where more than half vote lesion
  (a tie is background); the probability is the fraction of votes;
* ``"staple"``: Warfield's STAPLE (SimpleITK ``STAPLEImageFilter``, extra
  ``brrrr-models[registration]``) estimates each member's sensitivity and specificity and
  the posterior probability of lesion, thresholded.

The pure functions :func:`mean_probability`, :func:`majority_vote` and :func:`staple` work
on arrays; :class:`EnsembleSegmenter` is the segmenter.

Example:
    >>> import numpy as np
    >>> masks = [np.array([1, 1, 0]), np.array([1, 0, 0]), np.array([1, 1, 1])]
    >>> majority_vote(masks)[1].tolist()
    [1, 1, 0]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from brrrr.core.errors import MissingDependencyError
from brrrr.core.volume import Volume
from brrrr.models.segmentation.errors import SegmentationError
from brrrr.models.segmentation.preprocessing import InputLike
from brrrr.models.segmentation.segmenter import Segmentation, Segmenter

__all__ = ["EnsembleMethod", "EnsembleSegmenter", "majority_vote", "mean_probability", "staple"]

#: How member outputs combine.
EnsembleMethod = Literal["mean", "majority", "staple"]


def _stack(arrays: Sequence[np.ndarray], what: str) -> np.ndarray:
    if not arrays:
        raise SegmentationError(f"no {what} to combine")
    shapes = {np.shape(a) for a in arrays}
    if len(shapes) != 1:
        raise SegmentationError(f"the {what} have different shapes {sorted(shapes)}")
    return np.stack([np.asarray(a) for a in arrays])


def mean_probability(
    probabilities: Sequence[np.ndarray], *, weights: Sequence[float] | None = None
) -> np.ndarray:
    """The voxel-wise (weighted) mean of probability maps (float32).

    Raises:
        SegmentationError: No maps, different shapes, or bad weights.
    """
    stack = _stack(probabilities, "probability maps").astype(np.float32)
    if weights is None:
        return stack.mean(axis=0)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (len(stack),) or (w < 0).any() or w.sum() <= 0:
        raise SegmentationError(
            f"weights must be {len(stack)} non-negative numbers with a positive sum, got {weights}"
        )
    return np.tensordot(w / w.sum(), stack, axes=1).astype(np.float32)


def majority_vote(masks: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Majority vote of binary masks.

    Returns:
        ``(fraction, mask)``: the float32 fraction of members voting lesion, and the uint8
        mask where more than half of them do (ties are background).
    """
    stack = _stack(masks, "masks") > 0
    votes = stack.sum(axis=0)
    return (votes / len(stack)).astype(np.float32), (2 * votes > len(stack)).astype(np.uint8)


def staple(masks: Sequence[np.ndarray], *, spacing_mm: Sequence[float] | None = None) -> np.ndarray:
    """STAPLE's posterior lesion probability from binary masks (SimpleITK).

    Args:
        masks: Binary ``(I, J, K)`` masks of the members.
        spacing_mm: Voxel size (does not change the result; kept on the ITK images).

    Returns:
        float32 ``(I, J, K)`` probabilities.

    Raises:
        MissingDependencyError: SimpleITK is not installed.
    """
    try:
        import SimpleITK as sitk
    except ImportError:
        raise MissingDependencyError(
            'STAPLE needs SimpleITK: pip install "brrrr-models[registration]"'
        ) from None
    stack = (_stack(masks, "masks") > 0).astype(np.uint8)
    images = []
    for mask in stack:
        image = sitk.GetImageFromArray(np.ascontiguousarray(mask.transpose(2, 1, 0)))
        if spacing_mm is not None:
            image.SetSpacing(tuple(float(s) for s in spacing_mm))
        images.append(image)
    if not stack.any():
        # STAPLE estimates no parameters from all-empty masks; all agree on background.
        return np.zeros(stack.shape[1:], dtype=np.float32)
    if stack.all():
        return np.ones(stack.shape[1:], dtype=np.float32)
    estimator = sitk.STAPLEImageFilter()
    estimator.SetForegroundValue(1.0)
    result = estimator.Execute(images)
    return np.clip(sitk.GetArrayFromImage(result).transpose(2, 1, 0), 0.0, 1.0).astype(np.float32)


class EnsembleSegmenter(Segmenter):
    """Several segmenters combined (see the module docstring).

    Args:
        members: The segmenters; they must share the reference channel name.
        method: ``"mean"``, ``"majority"`` or ``"staple"``.
        threshold: Mask threshold of ``"mean"`` and ``"staple"``.
        weights: Member weights of ``"mean"``.
        name: Short name.

    Raises:
        SegmentationError: No members, members with different reference channels, or bad
            options.
    """

    def __init__(
        self,
        members: Sequence[Segmenter],
        *,
        method: EnsembleMethod = "mean",
        threshold: float = 0.5,
        weights: Sequence[float] | None = None,
        name: str = "ensemble",
    ) -> None:
        if not members:
            raise SegmentationError("an ensemble needs at least one member")
        references = {m.reference for m in members}
        if len(references) != 1:
            raise SegmentationError(
                f"ensemble members must share their reference channel, got {sorted(references)}"
            )
        if method not in ("mean", "majority", "staple"):
            raise SegmentationError(f"method must be mean, majority or staple, got {method!r}")
        if weights is not None and len(weights) != len(members):
            raise SegmentationError(f"{len(weights)} weights for {len(members)} members")
        required: list[str] = []
        for member in members:
            required += [c for c in member.channels if c not in required]
        optional: list[str] = []
        for member in members:
            optional += [c for c in member.optional_channels if c not in required + optional]
        reference = members[0].reference
        super().__init__(
            [reference, *(c for c in required if c != reference)],
            optional_channels=optional,
            threshold=threshold,
            name=name,
        )
        self.members = tuple(members)
        self.method = method
        self.weights = None if weights is None else [float(w) for w in weights]

    def predict(self, volumes: Mapping[str, Volume], *, reference: Volume) -> Volume:
        """The combined probability (see :meth:`segment_prepared` for the masks)."""
        return self.segment_prepared(volumes).probability

    def segment(
        self,
        inputs: Mapping[str, InputLike | None],
        *,
        threshold: float | None = None,
        register: Sequence[str] = (),
    ) -> Segmentation:
        """Segment one case with every member and combine (inputs are loaded once)."""
        volumes = self.prepare(inputs, register=register)
        return self.segment_prepared(volumes, threshold=threshold)

    def segment_prepared(
        self, volumes: Mapping[str, Volume], *, threshold: float | None = None
    ) -> Segmentation:
        """Run every member on the loaded channels and combine their outputs."""
        level = self.threshold if threshold is None else float(threshold)
        reference = volumes[self.reference]
        results = []
        for member in self.members:
            wanted = {
                k: v for k, v in volumes.items() if k in member.channels + member.optional_channels
            }
            results.append(member.segment_prepared(wanted))
        metadata = {"segmenter": self.name, "method": self.method, "members": len(results)}
        if self.method == "majority":
            fraction, mask = majority_vote([r.mask.data for r in results])
            rule = "more than half of the members vote lesion"
            probability = fraction
        else:
            if self.method == "mean":
                probability = mean_probability(
                    [r.probability.data for r in results], weights=self.weights
                )
            else:
                probability = staple([r.mask.data for r in results], spacing_mm=reference.spacing)
            mask = (probability >= level).astype(np.uint8)
            rule = f"{self.method} probability >= {level:g}"
        return Segmentation(
            Volume(probability, reference.affine, metadata={**metadata, "kind": "probability"}),
            Volume(mask, reference.affine, metadata={**metadata, "kind": "mask", "rule": rule}),
            level,
            tuple(results),
        )
