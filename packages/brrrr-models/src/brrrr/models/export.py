"""ONNX export of a model's encoder and decoder, checked against torch with onnxruntime.

Each network describes its two graphs (:meth:`onnx_graphs`): the encoder maps inputs (and
metadata, when the model has any) to the posterior ``(mu, logvar)``; the decoder maps latents
(and metadata) to the reconstruction. :func:`export_onnx` writes ``encoder.onnx`` and
``decoder.onnx`` with a dynamic batch axis, runs both in onnxruntime (CPU) on fresh random
inputs of another batch size, and returns the largest absolute difference from torch per graph.
It raises if a difference exceeds ``tolerance``.

Needs the ``export`` extra: ``pip install "brrrr-models[export]"``.

Example:
    >>> import tempfile
    >>> from brrrr.models import PointVAE, PointVAEConfig
    >>> model = PointVAE(PointVAEConfig(n_points=16, latent_dim=4))
    >>> report = export_onnx(model, tempfile.mkdtemp())  # doctest: +SKIP
    >>> report.max_abs_diff  # doctest: +SKIP
    {'encoder': 2.4e-07, 'decoder': 1.2e-07}
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from brrrr.core.errors import MissingDependencyError
from brrrr.models.errors import ExportError

__all__ = [
    "OnnxExport",
    "OnnxExportable",
    "OnnxGraph",
    "example_metadata",
    "export_onnx",
    "metadata_kwargs",
    "onnx_max_abs_diff",
]

_METADATA_NAMES = ("metadata", "metadata_mask")


@dataclass(frozen=True)
class OnnxGraph:
    """One graph to export.

    Attributes:
        name: File stem, e.g. ``"encoder"``.
        forward: ``forward(model, *inputs)`` returning a tensor or a tuple of tensors.
        inputs: Example inputs (batch first).
        input_names: One name per input.
        output_names: One name per output.
    """

    name: str
    forward: Callable[..., Any]
    inputs: tuple[torch.Tensor, ...]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]


def example_metadata(
    metadata_dim: int, *, batch_size: int
) -> tuple[tuple[torch.Tensor, ...], tuple[str, ...]]:
    """Example metadata inputs of a graph, and their names; empty for unconditional models.

    Args:
        metadata_dim: The model's ``M``.
        batch_size: Batch size.

    Returns:
        ``((metadata (B, M), metadata_mask (B, M) float 0/1), ("metadata", "metadata_mask"))``.
    """
    if metadata_dim == 0:
        return (), ()
    values = torch.randn(batch_size, metadata_dim)
    mask = (torch.rand(batch_size, metadata_dim) < 0.7).float()
    return (values, mask), _METADATA_NAMES


def metadata_kwargs(inputs: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
    """Turn the trailing metadata inputs of a graph back into keyword arguments."""
    return dict(zip(_METADATA_NAMES, inputs, strict=False))


class OnnxExportable(Protocol):
    """A model that can describe its encoder and decoder graphs."""

    def onnx_graphs(self, *, batch_size: int) -> list[OnnxGraph]: ...


@dataclass(frozen=True)
class OnnxExport:
    """Result of :func:`export_onnx`.

    Attributes:
        paths: ``{graph name: .onnx file}``.
        max_abs_diff: ``{graph name: max |onnxruntime - torch|}`` over all outputs.
    """

    paths: dict[str, Path]
    max_abs_diff: dict[str, float]


class _GraphModule(nn.Module):
    def __init__(self, model: nn.Module, forward: Callable[..., Any]) -> None:
        super().__init__()
        self.model = model
        self._forward = forward

    def forward(self, *inputs: torch.Tensor) -> Any:
        return self._forward(self.model, *inputs)


@contextlib.contextmanager
def _quiet_torch_onnx() -> Iterator[None]:
    # The exporter logs a warning per missing optional op library (torchvision) on every call.
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _as_tuple(outputs: Any) -> tuple[torch.Tensor, ...]:
    return tuple(outputs) if isinstance(outputs, tuple | list) else (outputs,)


def onnx_max_abs_diff(path: str | os.PathLike[str], module: nn.Module, graph: OnnxGraph) -> float:
    """Run an exported graph in onnxruntime and compare with torch.

    Args:
        path: The ``.onnx`` file.
        module: The torch module it was exported from.
        graph: Supplies the inputs and names.

    Returns:
        The largest absolute difference over all outputs.
    """
    try:
        import onnxruntime
    except ImportError as err:
        raise MissingDependencyError(
            'checking ONNX graphs needs onnxruntime: pip install "brrrr-models[export]"'
        ) from err
    session = onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    feed = {
        name: t.detach().cpu().numpy()
        for name, t in zip(graph.input_names, graph.inputs, strict=True)
    }
    got = session.run(list(graph.output_names), feed)
    with torch.no_grad():
        expected = _as_tuple(module(*graph.inputs))
    return max(
        float(abs(torch.as_tensor(g) - e.detach().cpu()).max())
        for g, e in zip(got, expected, strict=True)
    )


def export_onnx(
    model: OnnxExportable,
    directory: str | os.PathLike[str],
    *,
    batch_size: int = 2,
    check_batch_size: int = 3,
    opset_version: int = 18,
    tolerance: float = 1e-4,
) -> OnnxExport:
    """Export a model's encoder and decoder to ONNX and check them with onnxruntime.

    Args:
        model: A network from :mod:`brrrr.models.nets` (put in eval mode for the export).
        directory: Folder for ``encoder.onnx`` and ``decoder.onnx`` (created if needed).
        batch_size: Batch size of the traced example inputs.
        check_batch_size: Batch size of the check (differs, to prove the batch axis is dynamic).
        opset_version: ONNX opset.
        tolerance: Largest allowed absolute difference from torch.

    Returns:
        The files and the measured differences.

    Raises:
        MissingDependencyError: If the ``export`` extra is not installed.
        ExportError: If a graph differs from torch by more than ``tolerance``.
    """
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise MissingDependencyError(
            'ONNX export needs onnx and onnxscript: pip install "brrrr-models[export]"'
        ) from err
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected an nn.Module, got {type(model).__name__}")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    paths: dict[str, Path] = {}
    diffs: dict[str, float] = {}
    try:
        checks = {g.name: g for g in model.onnx_graphs(batch_size=check_batch_size)}
        for graph in model.onnx_graphs(batch_size=batch_size):
            module = _GraphModule(model, graph.forward).eval()
            path = out / f"{graph.name}.onnx"
            batch = torch.export.Dim("batch", min=1)
            with warnings.catch_warnings(), _quiet_torch_onnx():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    module,
                    graph.inputs,
                    path,
                    input_names=list(graph.input_names),
                    output_names=list(graph.output_names),
                    opset_version=opset_version,
                    dynamo=True,
                    external_data=False,
                    # forward(*inputs): one entry for the varargs tuple
                    dynamic_shapes=(tuple({0: batch} for _ in graph.inputs),),
                    verbose=False,
                )
            paths[graph.name] = path
            diffs[graph.name] = onnx_max_abs_diff(path, module, checks[graph.name])
    finally:
        model.train(was_training)
    bad = {name: diff for name, diff in diffs.items() if not diff <= tolerance}
    if bad:
        raise ExportError(
            f"ONNX graphs differ from torch by more than {tolerance}: {bad}", path=out
        )
    return OnnxExport(paths=paths, max_abs_diff=diffs)
