"""The errors of ``brrrr.demos``, all under :class:`~brrrr.core.errors.BrrrrError`.

A file that cannot be read at all (missing, not an image) raises core's own errors
(:class:`~brrrr.core.errors.VolumeReadError`, :class:`~brrrr.core.errors.UnsupportedFormatError`),
which already name the file; the errors here are for volumes that load but cannot be shown,
and for view options that make no sense.

Example:
    >>> from brrrr.demos.errors import LayerError
    >>> str(LayerError("2-D image (shape (64, 64, 1)): the viewer shows 3-D volumes", path="slice.nii"))
    'slice.nii: 2-D image (shape (64, 64, 1)): the viewer shows 3-D volumes'
"""

from __future__ import annotations

from brrrr.core.errors import BrrrrError

__all__ = ["AtlasModelError", "BrowserError", "ExplorerError", "LayerError", "ViewerError"]


class ViewerError(BrrrrError):
    """A view cannot be built: no layers, an option out of range, an unknown colormap."""


class LayerError(ViewerError):
    """A volume loads but cannot be shown as a layer: 2-D, several channels, NaN or infinite voxels."""


class BrowserError(BrrrrError):
    """Headless Chromium is missing, failed, or did not finish (``brrrr.demos.testing``)."""


class AtlasModelError(BrrrrError):
    """An atlas model folder (Atlas explorer tab) is missing a file or holds the wrong model."""


class ExplorerError(BrrrrError):
    """A folder cannot be explored (neither BIDS nor ``to_hf`` output), or a row not shown."""


class DemoError(BrrrrError):
    """Something in a Gradio demo app (:mod:`brrrr.demos.apps`) cannot be done."""


class DemoInputError(DemoError):
    """An upload or a choice in a demo cannot be used: too large, truncated, not a volume, 2-D.

    The app shows the message as it is (a ``gr.Error``), so it names the file and the problem.
    """


class DemoSetupError(DemoError):
    """The demo cannot start: a tab's module or its extra is missing, the sample cannot be written."""
