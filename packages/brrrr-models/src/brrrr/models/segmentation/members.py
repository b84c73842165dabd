"""MONAI networks as segmenters: a small config, a network factory and the segmenter.

A :class:`NetworkConfig` says everything inference needs to know about a trained network:
which MONAI architecture (``SegResNet``, ``DynUNet``, ``UNet``) with which keyword arguments,
the input channels by name (in order; optional channels are zeros when not given, as the
network was trained with them dropped), each channel's :class:`Normalization`, the voxel
size and orientation the network was trained at, the sliding-window patch size, the output
activation and which output channel is the lesion. It is stored as JSON or YAML next to the
weights (``model.safetensors`` + ``model.json``); see
:mod:`brrrr.models.segmentation.checkpoints` for the weight formats.

:class:`NetworkSegmenter` runs it: every channel is resampled once, by world position, from
its own grid onto the model grid (the reference reoriented to ``orientation`` and resampled to
``spacing_mm``), normalised, run through
:func:`~brrrr.models.segmentation.inference.sliding_window_probabilities`, and the lesion
probability is brought back onto the reference grid.

Example:
    >>> config = NetworkConfig.from_dict({
    ...     "network": "SegResNet", "channels": ["dwi", "adc"],
    ...     "kwargs": {"init_filters": 8, "blocks_down": [1, 2, 2], "blocks_up": [1, 1]},
    ...     "patch_size": [48, 48, 48], "spacing_mm": [3, 3, 3]})
    >>> config.in_channels
    2
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from brrrr.core.errors import MissingDependencyError
from brrrr.core.resample import resample
from brrrr.core.volume import Volume
from brrrr.models.segmentation.errors import SegmentationError
from brrrr.models.segmentation.inference import (
    Activation,
    TestTimeAugmentation,
    sliding_window_probabilities,
)
from brrrr.models.segmentation.preprocessing import Normalization, model_grid, normalize
from brrrr.models.segmentation.segmenter import Segmenter

if TYPE_CHECKING:
    import torch

__all__ = [
    "NETWORKS",
    "NetworkConfig",
    "NetworkSegmenter",
    "build_network",
    "load_network_config",
    "network_inputs",
]

#: The MONAI architectures a config can name.
NETWORKS = ("SegResNet", "DynUNet", "UNet")

_FIELDS = {
    "network",
    "channels",
    "optional_channels",
    "out_channels",
    "kwargs",
    "normalization",
    "patch_size",
    "spacing_mm",
    "orientation",
    "activation",
    "lesion_index",
    "threshold",
    "overlap",
    "tta",
    "name",
    "description",
    "weights",
    "metadata",
}


def _triple(value: Any, what: str, *, path: str | None) -> tuple[Any, Any, Any]:
    values = [value] * 3 if isinstance(value, int | float) else list(value)
    if len(values) != 3:
        raise SegmentationError(f"{what} needs 3 values, got {value!r}", path=path)
    return (values[0], values[1], values[2])


@dataclass(frozen=True)
class NetworkConfig:
    """How to build and run one segmentation network (see the module docstring).

    Attributes:
        network: ``"SegResNet"``, ``"DynUNet"`` or ``"UNet"`` (``monai.networks.nets``).
        channels: Input channel names the network needs, in input order.
        optional_channels: Channel names after ``channels`` in the input; zeros when missing.
        out_channels: Output channels (2 for background/lesion softmax, 1 for sigmoid).
        kwargs: Further keyword arguments of the MONAI class (``init_filters``…);
            ``spatial_dims``, ``in_channels`` and ``out_channels`` come from this config.
        normalization: Per channel name; channels not listed get ``Normalization()``.
        patch_size: Sliding-window size (voxels of the model grid).
        spacing_mm: Voxel size the network runs at (``None``: the reference's own).
        orientation: Axis orientation of the model grid.
        activation: ``"softmax"`` or ``"sigmoid"``.
        lesion_index: The output channel that is the lesion probability.
        threshold: Default mask threshold.
        overlap: Sliding-window overlap.
        tta: ``"none"`` or ``"flip"``.
        name: Short model name.
        description: What the model is, how it was trained.
        weights: Weights file, relative to the config file (when the config is given alone).
        metadata: Free-form provenance (training data, measured scores).
    """

    network: str
    channels: tuple[str, ...]
    optional_channels: tuple[str, ...] = ()
    out_channels: int = 2
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    normalization: Mapping[str, Normalization] = field(default_factory=dict)
    patch_size: tuple[int, int, int] = (64, 64, 64)
    spacing_mm: tuple[float, float, float] | None = None
    orientation: str = "RAS"
    activation: Activation = "softmax"
    lesion_index: int = 1
    threshold: float = 0.5
    overlap: float = 0.5
    tta: TestTimeAugmentation = "none"
    name: str = "lesion-model"
    description: str = ""
    weights: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.network not in NETWORKS:
            raise SegmentationError(
                f"unknown network {self.network!r}; choose one of {', '.join(NETWORKS)}"
            )
        if not self.channels:
            raise SegmentationError("a network config needs at least one input channel")
        if not 0 <= self.lesion_index < self.out_channels:
            raise SegmentationError(
                f"lesion_index {self.lesion_index} is not an output channel "
                f"(out_channels={self.out_channels})"
            )
        if self.activation not in ("softmax", "sigmoid"):
            raise SegmentationError(
                f"activation must be softmax or sigmoid, got {self.activation!r}"
            )
        if self.tta not in ("none", "flip"):
            raise SegmentationError(f"tta must be none or flip, got {self.tta!r}")
        unknown = sorted(set(self.normalization) - set(self.input_channels))
        if unknown:
            raise SegmentationError(
                f"normalization names channel(s) {unknown} the network does not read"
            )

    @property
    def input_channels(self) -> tuple[str, ...]:
        """All input channels, in the network's input order."""
        return self.channels + self.optional_channels

    @property
    def in_channels(self) -> int:
        """Number of input channels of the network."""
        return len(self.input_channels)

    def normalization_of(self, channel: str) -> Normalization:
        """The normalisation of one channel."""
        return self.normalization.get(channel, Normalization())

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, path: str | os.PathLike[str] | None = None
    ) -> NetworkConfig:
        """Build from a JSON/YAML mapping; unknown keys and bad values name ``path``.

        Raises:
            SegmentationError: Unknown fields, missing ``network``/``channels``, bad values.
        """
        where = None if path is None else os.fspath(path)
        unknown = sorted(set(data) - _FIELDS)
        if unknown:
            raise SegmentationError(
                f"unknown network config field(s) {unknown}; known: {sorted(_FIELDS)}", path=where
            )
        for required in ("network", "channels"):
            if required not in data:
                raise SegmentationError(f"the network config needs {required!r}", path=where)
        try:
            spacing = data.get("spacing_mm")
            return cls(
                network=str(data["network"]),
                channels=tuple(str(c) for c in data["channels"]),
                optional_channels=tuple(str(c) for c in data.get("optional_channels", ())),
                out_channels=int(data.get("out_channels", 2)),
                kwargs=dict(data.get("kwargs", {})),
                normalization={
                    str(k): Normalization.from_dict(v)
                    for k, v in dict(data.get("normalization", {})).items()
                },
                patch_size=tuple(
                    int(p) for p in _triple(data.get("patch_size", 64), "patch_size", path=where)
                ),  # type: ignore[arg-type]
                spacing_mm=None
                if spacing is None
                else tuple(float(s) for s in _triple(spacing, "spacing_mm", path=where)),  # type: ignore[arg-type]
                orientation=str(data.get("orientation", "RAS")),
                activation=data.get("activation", "softmax"),
                lesion_index=int(data.get("lesion_index", 1)),
                threshold=float(data.get("threshold", 0.5)),
                overlap=float(data.get("overlap", 0.5)),
                tta=data.get("tta", "none"),
                name=str(data.get("name", "lesion-model")),
                description=str(data.get("description", "")),
                weights=None if data.get("weights") is None else str(data["weights"]),
                metadata=dict(data.get("metadata", {})),
            )
        except SegmentationError as error:
            raise SegmentationError(error.message, path=where) from None
        except (TypeError, ValueError) as error:
            raise SegmentationError(f"bad network config: {error}", path=where) from None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (what :meth:`from_dict` reads)."""
        out: dict[str, Any] = {
            "network": self.network,
            "channels": list(self.channels),
            "optional_channels": list(self.optional_channels),
            "out_channels": self.out_channels,
            "kwargs": _jsonable(dict(self.kwargs)),
            "normalization": {k: v.to_dict() for k, v in self.normalization.items()},
            "patch_size": list(self.patch_size),
            "spacing_mm": None if self.spacing_mm is None else list(self.spacing_mm),
            "orientation": self.orientation,
            "activation": self.activation,
            "lesion_index": self.lesion_index,
            "threshold": self.threshold,
            "overlap": self.overlap,
            "tta": self.tta,
            "name": self.name,
            "description": self.description,
            "metadata": _jsonable(dict(self.metadata)),
        }
        if self.weights is not None:
            out["weights"] = self.weights
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def load_network_config(path: str | os.PathLike[str]) -> NetworkConfig:
    """Read a :class:`NetworkConfig` from a ``.json``, ``.yaml`` or ``.yml`` file.

    Raises:
        SegmentationError: The file is missing, cannot be parsed, or holds a bad config.
    """
    file = Path(path)
    if not file.is_file():
        raise SegmentationError("no such network config file", path=file)
    text = file.read_text(encoding="utf-8")
    try:
        if file.suffix.lower() in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise MissingDependencyError(
                    'YAML configs need pyyaml: pip install "brrrr-models[segmentation]"'
                ) from None
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except (ValueError, ImportError) as error:
        if isinstance(error, MissingDependencyError):
            raise
        raise SegmentationError(f"cannot parse the network config: {error}", path=file) from None
    if not isinstance(data, Mapping):
        raise SegmentationError("a network config is a mapping of fields", path=file)
    return NetworkConfig.from_dict(data, path=file)


def build_network(
    config: NetworkConfig, *, source: str | os.PathLike[str] | None = None
) -> torch.nn.Module:
    """The (untrained) MONAI network a config describes.

    Raises:
        MissingDependencyError: MONAI is not installed.
        SegmentationError: The MONAI class refuses the keyword arguments (names ``source``).
    """
    try:
        from monai.networks import nets
    except ImportError:
        raise MissingDependencyError(
            f'the {config.network} network needs MONAI: pip install "brrrr-models[segmentation]"'
        ) from None
    factory = getattr(nets, config.network)
    kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in config.kwargs.items()}
    reserved = sorted({"spatial_dims", "in_channels", "out_channels"} & set(kwargs))
    if reserved:
        raise SegmentationError(
            f"kwargs must not set {reserved}: they come from the config's channels", path=source
        )
    try:
        network = factory(
            spatial_dims=3,
            in_channels=config.in_channels,
            out_channels=config.out_channels,
            **kwargs,
        )
    except (TypeError, ValueError, AssertionError) as error:
        raise SegmentationError(
            f"cannot build {config.network} from kwargs {kwargs}: {error}", path=source
        ) from None
    assert network is not None
    return network


def _brain_on(volume: Volume, volumes: Mapping[str, Volume], reference: Volume) -> np.ndarray:
    """A brain mask on ``volume``'s grid: the ``brain`` input, else the reference's nonzero voxels."""
    source = volumes.get("brain")
    if source is None:
        mask, affine = np.asarray(reference.data) != 0, reference.affine
    else:
        mask, affine = np.asarray(source.data) > 0.5, source.affine
    if mask.shape == volume.shape and np.allclose(affine, volume.affine, atol=1e-4):
        return mask
    return np.asarray(
        resample(
            mask.astype(np.uint8),
            affine,
            target_shape=volume.shape,
            target_affine=volume.affine,
            interpolation="nearest",
        )
        > 0
    )


def network_inputs(
    config: NetworkConfig, volumes: Mapping[str, Volume], *, reference: Volume
) -> tuple[np.ndarray, np.ndarray]:
    """The normalised ``(C, I, J, K)`` network input on the model grid, and its (4, 4) affine.

    Each channel is normalised on its own grid (statistics over its own voxels, as nnU-Net
    does, so interpolation at the brain border does not shift them), then resampled once,
    linearly and by world position, onto :func:`~brrrr.models.segmentation.preprocessing.model_grid`.
    Optional channels that were not given are zeros, as in training.

    Args:
        config: The network config.
        volumes: The checked channels (each on its own grid), optionally ``"brain"``.
        reference: The reference channel.
    """
    shape, affine = model_grid(
        reference, spacing_mm=config.spacing_mm, orientation=config.orientation
    )
    stack = np.zeros((config.in_channels, *shape), dtype=np.float32)
    for index, name in enumerate(config.input_channels):
        if name not in volumes:
            continue  # an optional channel not given stays zero, as in training
        volume = volumes[name]
        spec = config.normalization_of(name)
        brain = _brain_on(volume, volumes, reference) if spec.region == "brain" else None
        normalised = normalize(volume.data, spec, brain=brain)
        stack[index] = resample(normalised, volume.affine, target_shape=shape, target_affine=affine)
    return stack, affine


def _to_channels_last(network: object) -> bool:
    """Put a plain ``nn.Module``'s weights in ``channels_last_3d`` order (in place).

    oneDNN (CPU) and cuDNN convolve 3D windows faster in that order; the values are the
    same. TorchScript modules and ONNX runners are left as they are (``False``).
    """
    import torch

    if not isinstance(network, torch.nn.Module) or isinstance(network, torch.jit.ScriptModule):
        return False
    network.to(memory_format=torch.channels_last_3d)
    return True


class NetworkSegmenter(Segmenter):
    """A segmentation network with its :class:`NetworkConfig` (see the module docstring).

    Args:
        config: The network config.
        network: ``(B, C, *patch) -> (B, K, *patch)`` logits: an ``nn.Module`` (moved to
            ``device``, set to eval mode), a TorchScript module or an ONNX runner.
        device: Where the network runs.
        source: The weights file, named in errors.
    """

    def __init__(
        self,
        config: NetworkConfig,
        network: Callable[[torch.Tensor], torch.Tensor],
        *,
        device: str | torch.device = "cpu",
        source: str | os.PathLike[str] | None = None,
    ) -> None:
        wants_brain = any(
            config.normalization_of(c).region == "brain" for c in config.input_channels
        )
        super().__init__(
            config.channels,
            optional_channels=config.optional_channels + (("brain",) if wants_brain else ()),
            threshold=config.threshold,
            name=config.name,
            source=source,
        )
        self.config = config
        self.device = device
        to = getattr(network, "to", None)
        if callable(to) and hasattr(network, "eval"):
            network = to(device)
            network.eval()  # type: ignore[attr-defined]
        self.channels_last = _to_channels_last(network)
        self.network = network

    def model_inputs(
        self, volumes: Mapping[str, Volume], *, reference: Volume
    ) -> tuple[np.ndarray, np.ndarray]:
        """The network input on the model grid; see :func:`network_inputs`."""
        return network_inputs(self.config, volumes, reference=reference)

    def predict(self, volumes: Mapping[str, Volume], *, reference: Volume) -> Volume:
        """The lesion probability on the model grid (the base class maps it back)."""
        config = self.config
        image, affine = self.model_inputs(volumes, reference=reference)
        try:
            probabilities = sliding_window_probabilities(
                self.network,
                image,
                patch_size=config.patch_size,
                overlap=config.overlap,
                activation=config.activation,
                tta=config.tta,
                device=self.device,
                channels_last=self.channels_last,
                # ONNX and TorchScript exports may fix the batch at one window.
                batch_size=None if self.channels_last else 1,
            )
        except RuntimeError as error:
            raise SegmentationError(
                f"the {config.network} network failed on an input of {config.in_channels} "
                f"channels and patch {config.patch_size}: {str(error).splitlines()[0]}",
                path=self.source,
            ) from None
        return Volume(probabilities[config.lesion_index], affine, metadata={"grid": "model"})

    def with_options(
        self, *, tta: Literal["none", "flip"] | None = None, threshold: float | None = None
    ) -> NetworkSegmenter:
        """A copy with other inference options (same network object)."""
        from dataclasses import replace

        config = replace(
            self.config,
            tta=self.config.tta if tta is None else tta,
            threshold=self.config.threshold if threshold is None else threshold,
        )
        return NetworkSegmenter(config, self.network, device=self.device, source=self.source)
