"""Errors raised on purpose by ``brrrr.models``; all derive from :class:`brrrr.core.errors.BrrrrError`."""

from __future__ import annotations

from brrrr.core.errors import BrrrrError

__all__ = ["ExportError", "ModelConfigError"]


class ModelConfigError(BrrrrError, ValueError):
    """A model configuration is inconsistent, or a saved one does not match the class loading it."""


class ExportError(BrrrrError, RuntimeError):
    """An ONNX export failed, or the exported graph disagrees with the torch model."""
