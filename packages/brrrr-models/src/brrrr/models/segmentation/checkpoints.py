"""Loading segmenters from files: checkpoints, configs, nnU-Net folders and the shipped model.

Weight formats of a :class:`~brrrr.models.segmentation.members.NetworkSegmenter`, told apart
by the file itself:

* **PyTorch state dict** (``.pt``, ``.pth``, ``.ckpt``): ``torch.save(model.state_dict())``,
  or a dict holding it under ``state_dict`` / ``model_state_dict`` / ``network_weights`` /
  ``model`` (Lightning, nnU-Net-style checkpoints); a ``module.`` prefix (DataParallel) or a
  common prefix such as ``model.`` (a LightningModule attribute) is removed. Read with
  ``torch.load(weights_only=True)``: no code from the file runs.
* **safetensors** (``.safetensors``).
* **TorchScript** (``torch.jit.save``; any suffix, recognised by its archive layout).
* **ONNX** (``.onnx``), run by onnxruntime (extra ``brrrr-models[export]``).

The network is described by a :class:`~brrrr.models.segmentation.members.NetworkConfig`
next to the weights (same name, ``.json``/``.yaml``/``.yml``) or given explicitly. State
dicts are checked against the network before loading: missing or unexpected tensors and
shape mismatches are a :class:`SegmentationError` naming the checkpoint.

:func:`load_segmenter` takes whatever a user points at — a built-in name
(``"synthetic-lesion"``), a weights file, a config file with ``weights:``, or an nnU-Net v2
result folder — and :func:`load_synthetic_lesion_model` returns the model shipped with
this package (trained on synthetic data only; see
:mod:`brrrr.models.segmentation.synthetic`).

Example:
    >>> model = load_synthetic_lesion_model()  # doctest: +SKIP
    >>> model.channels, model.optional_channels  # doctest: +SKIP
    (('dwi', 'adc'), ('flair',))
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from brrrr.core.errors import MissingDependencyError
from brrrr.models.segmentation.errors import SegmentationError
from brrrr.models.segmentation.members import (
    NetworkConfig,
    NetworkSegmenter,
    build_network,
    load_network_config,
)

if TYPE_CHECKING:
    import torch

    from brrrr.models.segmentation.segmenter import Segmenter

__all__ = [
    "BUILTIN_MODELS",
    "SYNTHETIC_LESION_MODEL",
    "apply_state_dict",
    "load_network_segmenter",
    "load_segmenter",
    "load_state_dict_file",
    "load_synthetic_lesion_model",
    "save_network",
    "shipped_weights",
]

#: Name of the shipped synthetic-data lesion model.
SYNTHETIC_LESION_MODEL = "synthetic-lesion"
#: Built-in model names → file of the shipped weights (in ``segmentation/weights/``).
BUILTIN_MODELS = {SYNTHETIC_LESION_MODEL: "lesion_segresnet_synthetic.safetensors"}

_CONFIG_SUFFIXES = (".json", ".yaml", ".yml")
_STATE_KEYS = ("state_dict", "model_state_dict", "network_weights", "model")
_SHOWN = 5


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise MissingDependencyError(
            "segmentation networks need torch: pip install torch"
        ) from None
    return torch


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any("/code/" in n or n.endswith("/constants.pkl") for n in names)


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read the tensors of a ``.safetensors`` file or a ``torch.save`` state dict.

    Raises:
        SegmentationError: Missing file, unreadable file, or no state dict inside.
    """
    torch = _torch()
    file = Path(path)
    if not file.is_file():
        raise SegmentationError("no such checkpoint file", path=file)
    if file.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(file)))
        except Exception as error:  # safetensors raises its own SafetensorError
            raise SegmentationError(
                f"not a readable safetensors file: {error}", path=file
            ) from None
    try:
        loaded = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle and zip errors of many kinds
        raise SegmentationError(
            f"cannot read the checkpoint with torch.load(weights_only=True): "
            f"{str(error).splitlines()[0]}",
            path=file,
        ) from None
    if isinstance(loaded, Mapping):
        for key in _STATE_KEYS:
            if isinstance(loaded.get(key), Mapping):
                loaded = loaded[key]
                break
    if not isinstance(loaded, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in loaded.values()
    ):
        raise SegmentationError(
            "holds no state dict (a mapping of parameter names to tensors, possibly under "
            f"one of {list(_STATE_KEYS)})",
            path=file,
        )
    return {str(k): v for k, v in loaded.items()}


def _strip_prefix(state: dict[str, Any], expected: set[str]) -> dict[str, Any]:
    if set(state) & expected or not state:
        return state
    for prefix in ("module.", *sorted({k.split(".", 1)[0] + "." for k in state if "." in k})):
        if all(k.startswith(prefix) for k in state):
            stripped = {k[len(prefix) :]: v for k, v in state.items()}
            if set(stripped) & expected:
                return stripped
    return state


def _listing(names: list[str]) -> str:
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


def apply_state_dict(
    network: torch.nn.Module,
    state: Mapping[str, torch.Tensor],
    *,
    path: str | os.PathLike[str] | None = None,
    network_name: str | None = None,
) -> None:
    """Load ``state`` into ``network`` strictly, after checking names and shapes.

    Raises:
        SegmentationError: Missing or unexpected tensors or shape mismatches, listed, with
            the checkpoint named: the checkpoint was trained for another network or config.
    """
    expected = network.state_dict()
    state = _strip_prefix(dict(state), set(expected))
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing tensor(s) ({_listing(missing)})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected tensor(s) ({_listing(unexpected)})")
        if shapes:
            problems.append(
                f"{len(shapes)} shape mismatch(es) (checkpoint vs network: {_listing(shapes)})"
            )
        name = network_name or type(network).__name__
        raise SegmentationError(
            f"the checkpoint does not fit the {name} network of its config: "
            + "; ".join(problems)
            + ". Check that the config (network, kwargs, channels, out_channels) is the one "
            "it was trained with",
            path=path,
        )
    network.load_state_dict(dict(state), strict=True)


def _find_config(weights: Path) -> Path:
    candidates = [weights.with_suffix(s) for s in _CONFIG_SUFFIXES]
    for candidate in candidates:
        if candidate.is_file() and candidate != weights:
            return candidate
    raise SegmentationError(
        "no network config next to the weights (looked for "
        + ", ".join(c.name for c in candidates)
        + "); write one (see brrrr.models.segmentation.members.NetworkConfig) or pass config=",
        path=weights,
    )


class _OnnxRunner:
    """An onnxruntime session as a ``Tensor -> Tensor`` callable."""

    def __init__(self, path: Path, config: NetworkConfig, device: str) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingDependencyError(
                'ONNX models need onnxruntime: pip install "brrrr-models[export]"'
            ) from None
        providers = ["CPUExecutionProvider"]
        if (
            str(device).startswith("cuda")
            and "CUDAExecutionProvider" in ort.get_available_providers()
        ):
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(path), providers=providers)
        except Exception as error:  # onnxruntime raises its own exception types
            raise SegmentationError(
                f"onnxruntime cannot load the model: {error}", path=path
            ) from None
        (first,) = self.session.get_inputs()[:1]
        self.input_name = first.name
        shape = list(first.shape)
        if len(shape) != 5:
            raise SegmentationError(
                f"the ONNX model's input has shape {shape}; a 3D segmentation network takes "
                "(batch, channels, I, J, K)",
                path=path,
            )
        if isinstance(shape[1], int) and shape[1] != config.in_channels:
            raise SegmentationError(
                f"the ONNX model takes {shape[1]} channels but its config names "
                f"{config.in_channels} ({', '.join(config.input_channels)})",
                path=path,
            )
        fixed = shape[2:]
        if all(isinstance(s, int) for s in fixed) and tuple(fixed) != tuple(config.patch_size):
            raise SegmentationError(
                f"the ONNX model has a fixed input size {tuple(fixed)}; set patch_size to it "
                f"in its config (now {config.patch_size})",
                path=path,
            )

    def __call__(self, patch: torch.Tensor) -> torch.Tensor:
        torch = _torch()
        array = patch.detach().float().cpu().numpy()
        (logits,) = self.session.run(None, {self.input_name: array})[:1]
        return torch.from_numpy(logits).to(patch.device)


def load_network_segmenter(
    weights: str | os.PathLike[str],
    *,
    config: NetworkConfig | str | os.PathLike[str] | None = None,
    device: str = "cpu",
) -> NetworkSegmenter:
    """A :class:`NetworkSegmenter` from a checkpoint in any supported format.

    Args:
        weights: The weights file (state dict, safetensors, TorchScript or ONNX).
        config: The :class:`NetworkConfig` or its file; ``None`` looks next to ``weights``.
        device: Where the network runs.

    Raises:
        SegmentationError: Missing files, no config, or weights that do not fit the network.
        MissingDependencyError: MONAI (or onnxruntime for ``.onnx``) is not installed.
    """
    torch = _torch()
    file = Path(weights)
    if not file.is_file():
        raise SegmentationError("no such weights file", path=file)
    if config is None:
        config = load_network_config(_find_config(file))
    elif not isinstance(config, NetworkConfig):
        config = load_network_config(config)
    runner: Callable[[Any], Any]
    if file.suffix.lower() == ".onnx":
        runner = _OnnxRunner(file, config, device)
    elif file.suffix.lower() != ".safetensors" and _is_torchscript(file):
        try:
            runner = torch.jit.load(str(file), map_location=device)
        except RuntimeError as error:
            raise SegmentationError(
                f"cannot load the TorchScript model: {str(error).splitlines()[0]}", path=file
            ) from None
    else:
        network = build_network(config, source=file)
        apply_state_dict(
            network, load_state_dict_file(file), path=file, network_name=config.network
        )
        runner = network
    return NetworkSegmenter(config, runner, device=device, source=file)


def save_network(
    network: torch.nn.Module, config: NetworkConfig, path: str | os.PathLike[str]
) -> Path:
    """Write ``network``'s weights as safetensors and ``config`` as JSON beside them.

    Args:
        network: The trained network (its state dict is saved).
        config: Its :class:`NetworkConfig`.
        path: The ``.safetensors`` file; the config goes to the same name with ``.json``.

    Returns:
        The weights path.
    """
    from safetensors.torch import save_file

    file = Path(path)
    if file.suffix != ".safetensors":
        raise SegmentationError("save the weights to a .safetensors file", path=file)
    file.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    save_file(state, str(file), metadata={"format": "pt", "network": config.network})
    text = json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n"
    file.with_suffix(".json").write_text(text, encoding="utf-8")
    return file


def shipped_weights(name: str = SYNTHETIC_LESION_MODEL) -> Path:
    """The file of a built-in model's weights (inside the installed package)."""
    if name not in BUILTIN_MODELS:
        raise SegmentationError(
            f"no built-in model {name!r}; built-in: {', '.join(BUILTIN_MODELS)}"
        )
    folder = resources.files("brrrr.models.segmentation") / "weights"
    return Path(str(folder / BUILTIN_MODELS[name]))


def load_synthetic_lesion_model(*, device: str = "cpu") -> NetworkSegmenter:
    """The lesion model shipped with brrrr-models — **trained on synthetic data only**.

    A MONAI SegResNet (init_filters 8) trained by ``scripts/train_lesion_model.py`` on cases
    of :func:`~brrrr.models.segmentation.synthetic.synthetic_stroke_case`; it reads ``dwi``
    and ``adc`` (and ``flair`` when given) at 3 mm. Its config's ``metadata`` records the
    training run and the held-out Dice measured on fresh synthetic cases. It makes the
    sample data and the demos work offline; it knows nothing of real scans.

    Args:
        device: Where the network runs.
    """
    return load_network_segmenter(shipped_weights(), device=device)


def load_segmenter(
    model: str | os.PathLike[str] | None = None,
    *,
    device: str = "cpu",
    config: NetworkConfig | str | os.PathLike[str] | None = None,
) -> Segmenter:
    """A segmenter from a built-in name, a weights file, a config file or an nnU-Net folder.

    Args:
        model: ``None`` or ``"synthetic-lesion"`` (the shipped model); a weights file (with
            its config beside it or in ``config``); a ``.json``/``.yaml`` network config
            whose ``weights`` field names the weights (relative to the config); or an nnU-Net
            v2 result folder (``plans.json``, ``dataset.json``, ``fold_*/``).
        device: Where the network runs.
        config: The config of a weights file, when it is not beside it.

    Raises:
        SegmentationError: Nothing by that name, or a file that cannot be loaded.
    """
    if model is None or str(model) in BUILTIN_MODELS:
        return load_network_segmenter(
            shipped_weights(str(model or SYNTHETIC_LESION_MODEL)), device=device
        )
    path = Path(model)
    if path.is_dir():
        from brrrr.models.segmentation.nnunet import NnUNetSegmenter

        return NnUNetSegmenter(path, device=device)
    if not path.exists():
        raise SegmentationError(
            f"no model file or folder, and no built-in model of that name "
            f"(built-in: {', '.join(BUILTIN_MODELS)})",
            path=path,
        )
    if path.suffix.lower() in _CONFIG_SUFFIXES:
        network_config = load_network_config(path)
        if network_config.weights is None:
            raise SegmentationError(
                "the network config has no 'weights' field naming its weights file", path=path
            )
        return load_network_segmenter(
            path.parent / network_config.weights, config=network_config, device=device
        )
    return load_network_segmenter(path, config=config, device=device)
