"""The one segmenter interface: named input volumes in, probability and mask out.

A :class:`Segmenter` declares the channels it reads (``channels``, e.g. ``("dwi", "adc")``),
the ones it uses when given (``optional_channels``, e.g. ``("flair",)``) and its
``reference`` channel. :meth:`Segmenter.segment` takes the inputs by name (volumes or
paths), checks them, optionally registers some channels rigidly onto the reference, asks the
member for a lesion probability on whatever grid it works on, and returns a
:class:`Segmentation` whose probability and mask are **on the grid of the reference input**
(same shape and affine: world position preserved).

Members implement one method, :meth:`Segmenter.predict`, which receives the checked
channels (each on its own grid) and the reference volume, and returns a probability volume
on any grid (the base class brings it back, linearly) or on the reference grid.

Example:
    >>> from brrrr.models.segmentation import load_synthetic_lesion_model, synthetic_stroke_case
    >>> case = synthetic_stroke_case(7)  # doctest: +SKIP
    >>> result = load_synthetic_lesion_model().segment(case.inputs())  # doctest: +SKIP
    >>> result.mask.shape == case.dwi.shape  # doctest: +SKIP
    True
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from brrrr.core.volume import Volume
from brrrr.models.segmentation.errors import SegmentationError
from brrrr.models.segmentation.preprocessing import (
    InputLike,
    check_overlap,
    load_inputs,
    on_grid,
    register_rigid,
)

__all__ = ["Segmentation", "Segmenter"]


@dataclass(frozen=True)
class Segmentation:
    """What a segmenter returns, on the reference input's grid.

    Attributes:
        probability: Lesion probability, float32 ``(I, J, K)`` in [0, 1].
        mask: Lesion mask, uint8 ``(I, J, K)`` of 0 and 1.
        threshold: The probability at or above which a voxel is lesion (for votes and
            STAPLE, the rule of the ensemble is stated in ``mask.metadata["rule"]``).
        members: The members' own segmentations, for an ensemble (empty otherwise).
    """

    probability: Volume
    mask: Volume
    threshold: float
    members: tuple[Segmentation, ...] = field(default=(), repr=False)


class Segmenter(ABC):
    """Base class of every segmenter (see the module docstring).

    Args:
        channels: Channel names the segmenter needs, in its input order.
        optional_channels: Channel names it uses when given.
        reference: The channel whose grid the outputs are on (default: the first channel).
        threshold: Default probability threshold of the mask.
        name: A short name for messages and metadata.
        source: The file or folder the segmenter was loaded from, named in errors.
    """

    def __init__(
        self,
        channels: Sequence[str],
        *,
        optional_channels: Sequence[str] = (),
        reference: str | None = None,
        threshold: float = 0.5,
        name: str = "segmenter",
        source: str | os.PathLike[str] | None = None,
    ) -> None:
        if not channels:
            raise SegmentationError("a segmenter needs at least one input channel", path=source)
        self.channels = tuple(str(c) for c in channels)
        self.optional_channels = tuple(str(c) for c in optional_channels)
        overlap = set(self.channels) & set(self.optional_channels)
        if overlap:
            raise SegmentationError(
                f"channel(s) {sorted(overlap)} are both required and optional", path=source
            )
        self.reference = self.channels[0] if reference is None else str(reference)
        if self.reference not in self.channels:
            raise SegmentationError(
                f"the reference channel {self.reference!r} is not one of the required "
                f"channels {self.channels}",
                path=source,
            )
        if not 0.0 <= threshold <= 1.0:
            raise SegmentationError(f"threshold must be in [0, 1], got {threshold}", path=source)
        self.threshold = float(threshold)
        self.name = name
        self.source = None if source is None else os.fspath(source)

    def __repr__(self) -> str:
        optional = f", optional={list(self.optional_channels)}" if self.optional_channels else ""
        return f"{type(self).__name__}({self.name!r}, channels={list(self.channels)}{optional})"

    # -- what members implement ---------------------------------------------------------------
    @abstractmethod
    def predict(self, volumes: Mapping[str, Volume], *, reference: Volume) -> Volume:
        """The lesion probability of one case.

        Args:
            volumes: The checked channels (float32, 3D, each on its own grid; optional
                channels only when given).
            reference: The reference channel (``volumes[self.reference]``).

        Returns:
            A float32 ``(I, J, K)`` probability volume, on the reference grid or on any grid
            covering it (it is then resampled linearly onto the reference grid).
        """

    # -- what users call ----------------------------------------------------------------------
    def prepare(
        self, inputs: Mapping[str, InputLike | None], *, register: Sequence[str] = ()
    ) -> dict[str, Volume]:
        """Load and check the inputs; rigidly register the channels named in ``register``.

        Every channel must cover most of the reference's field of view in world space
        (:func:`~brrrr.models.segmentation.preprocessing.check_overlap`), after registration.

        Raises:
            SegmentationError: A channel is missing or bad (see
                :func:`~brrrr.models.segmentation.preprocessing.load_inputs`), a channel
                to register is not an input, or a channel's grid cannot be matched to the
                reference's.
        """
        volumes = load_inputs(
            inputs,
            channels=self.channels,
            optional_channels=self.optional_channels,
            source=self.source,
        )
        reference = volumes[self.reference]
        for name in register:
            if name == self.reference:
                continue
            if name not in volumes:
                if name in self.optional_channels:
                    continue
                raise SegmentationError(
                    f"cannot register {name!r}: the model reads {self.channels + self.optional_channels}",
                    path=self.source,
                )
            volumes[name] = register_rigid(volumes[name], reference).volume
        for name, volume in volumes.items():
            if name != self.reference:
                check_overlap(volume, reference, name=name, reference=self.reference)
        return volumes

    def segment(
        self,
        inputs: Mapping[str, InputLike | None],
        *,
        threshold: float | None = None,
        register: Sequence[str] = (),
    ) -> Segmentation:
        """Segment one case.

        Args:
            inputs: Named volumes or paths (``{"dwi": ..., "adc": ..., "flair": ...}``);
                names the segmenter does not read are ignored.
            threshold: Probability threshold of the mask (default: the segmenter's).
            register: Channels to register rigidly onto the reference first (e.g.
                ``("flair",)``; extra ``brrrr-models[registration]``).

        Returns:
            The :class:`Segmentation`, on the reference input's grid.

        Raises:
            SegmentationError: Missing channels, NaN voxels, grids that cannot be matched, or
                a member failure; the message names the file.
        """
        volumes = self.prepare(inputs, register=register)
        return self.segment_prepared(volumes, threshold=threshold)

    def segment_prepared(
        self, volumes: Mapping[str, Volume], *, threshold: float | None = None
    ) -> Segmentation:
        """:meth:`segment` for channels already loaded and checked by :meth:`prepare`."""
        level = self.threshold if threshold is None else float(threshold)
        if not 0.0 <= level <= 1.0:
            raise SegmentationError(f"threshold must be in [0, 1], got {level}")
        reference = volumes[self.reference]
        probability = self.predict(volumes, reference=reference)
        return self._result(probability, reference, level)

    def _result(self, probability: Volume, reference: Volume, level: float) -> Segmentation:
        on_reference = on_grid(probability, reference, interpolation="linear")
        values = np.clip(np.asarray(on_reference.data, dtype=np.float32), 0.0, 1.0)
        if values.ndim == 4:
            values = values[0]
        metadata = {"segmenter": self.name, "reference": reference.source or self.reference}
        prob = Volume(values, reference.affine, metadata={**metadata, "kind": "probability"})
        mask = Volume(
            (values >= level).astype(np.uint8),
            reference.affine,
            metadata={**metadata, "kind": "mask", "threshold": level},
        )
        return Segmentation(prob, mask, level)
