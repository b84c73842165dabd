"""brrrr.demos.viewer: a NiiVue viewer from one Python description, in three places.

- :class:`View` and :class:`Layer` describe what to show (a base volume, overlays with
  colormaps, opacity, display ranges and thresholds, a crosshair in world mm, a layout);
- ``view.html()`` / ``view.to_html(path)``: a standalone page with NiiVue inlined;
- ``view`` in a notebook (``_repr_html_``) or ``view.widget()`` (anywidget, extra ``jupyter``);
- :func:`viewer_html` in a ``gr.HTML``, or :func:`gradio_viewer` (extra ``gradio``).

NiiVue (BSD-2-Clause) ships inside the package (:func:`~brrrr.demos.viewer.assets.niivue_bundle`);
nothing is loaded from a network.

Example:
    >>> from brrrr.core import samples
    >>> from brrrr.demos.viewer import Layer, View
    >>> image, lesion = samples.lesion_phantom(shape=(32, 38, 32), spacing=6.0)
    >>> view = View([Layer(image), Layer(lesion, colormap="red", opacity=0.6)])
    >>> path = view.to_html("lesion.html")  # doctest: +SKIP
"""

from __future__ import annotations

from brrrr.demos.viewer.assets import NiivueBundle, niivue_bundle
from brrrr.demos.viewer.embed import gradio_viewer, viewer_html
from brrrr.demos.viewer.layer import Layer
from brrrr.demos.viewer.view import Convention, SliceType, View

__all__ = [
    "Convention",
    "Layer",
    "NiivueBundle",
    "SliceType",
    "View",
    "gradio_viewer",
    "niivue_bundle",
    "viewer_html",
]
