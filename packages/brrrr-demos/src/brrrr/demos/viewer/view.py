"""`View`: layers, crosshair and layout of one NiiVue viewer, and its three renderings.

The same :class:`View` becomes

- a standalone HTML page with NiiVue inlined (:meth:`View.html`, :meth:`View.to_html`):
  it opens offline, from a file, in any WebGL2 browser;
- a Jupyter output: ``view`` alone at the end of a cell (:meth:`View._repr_html_`, the
  page in an ``<iframe srcdoc>``) or a live anywidget (:meth:`View.widget`) whose
  ``crosshair`` follows clicks and can be set from Python;
- a Gradio component: :func:`brrrr.demos.viewer.viewer_html` in a ``gr.HTML``.

Example:
    >>> from brrrr.core import samples
    >>> from brrrr.demos.viewer import Layer, View
    >>> image, lesion = samples.lesion_phantom(shape=(32, 38, 32), spacing=6.0)
    >>> view = View([Layer(image), Layer(lesion, colormap="red", opacity=0.6)],
    ...             crosshair=(-30.0, 12.0, 16.0), slice_type="multiplanar")
    >>> page = view.html()          # or view.to_html("lesion.html")
    >>> page.startswith("<!doctype html>")
    True
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from brrrr.demos.errors import ViewerError
from brrrr.demos.viewer.assets import inline_script, niivue_bundle, static_text
from brrrr.demos.viewer.embed import viewer_html
from brrrr.demos.viewer.layer import Layer

if TYPE_CHECKING:
    from brrrr.core import Volume
    from brrrr.demos.viewer.widget import ViewerWidget

__all__ = ["Convention", "SliceType", "View", "volume_html"]

SliceType = Literal["multiplanar", "axial", "coronal", "sagittal", "render"]
"""How NiiVue lays the volume out: three planes plus a 3-D rendering, one plane, or 3-D only."""
Convention = Literal["neurological", "radiological"]
"""Neurological: the subject's left on the screen's left; radiological: mirrored."""

# NiiVue's SLICE_TYPE enum.
_SLICE_TYPES: dict[str, int] = {
    "axial": 0,
    "coronal": 1,
    "sagittal": 2,
    "multiplanar": 3,
    "render": 4,
}
# Not red, so a red overlay stays the only red on screen.
_CROSSHAIR_COLOR = (0.15, 0.75, 1.0, 1.0)


def _rgba(value: Sequence[float], label: str) -> tuple[float, float, float, float]:
    rgba = tuple(float(c) for c in value)
    if len(rgba) != 4 or not all(0.0 <= c <= 1.0 for c in rgba):
        raise ViewerError(f"{label} must be 4 numbers (RGBA) between 0 and 1, got {value!r}")
    return (rgba[0], rgba[1], rgba[2], rgba[3])


class View:
    """One NiiVue viewer: a base layer, overlays on top, a crosshair and a layout.

    Args:
        layers: The base layer first, then overlays, drawn in that order. Each is a
            :class:`~brrrr.demos.viewer.Layer`, or a :class:`~brrrr.core.Volume` or a path
            (then drawn with ``Layer``'s defaults: gray, opaque). One layer alone is fine.
        crosshair: World position ``(x, y, z)`` in RAS+ mm to centre the crosshair on.
            Default: the centre of the base volume.
        slice_type: ``"multiplanar"`` (three planes and a 3-D rendering), ``"axial"``,
            ``"coronal"``, ``"sagittal"`` or ``"render"``.
        convention: ``"neurological"`` (left is left) or ``"radiological"``.
        height: Height in CSS pixels of the viewer in a notebook or an app (a standalone
            page fills its window).
        crosshair_color: RGBA, each 0–1.
        background: RGBA, each 0–1.
        title: Title of the standalone page.

    Raises:
        ViewerError: No layers, or an option out of range.
        LayerError: A volume cannot be shown (see :class:`~brrrr.demos.viewer.Layer`).
    """

    __slots__ = (
        "background",
        "convention",
        "crosshair",
        "crosshair_color",
        "height",
        "layers",
        "slice_type",
        "title",
    )

    def __init__(
        self,
        layers: Layer
        | Volume
        | str
        | os.PathLike[str]
        | Sequence[Layer | Volume | str | os.PathLike[str]],
        *,
        crosshair: Sequence[float] | None = None,
        slice_type: SliceType = "multiplanar",
        convention: Convention = "neurological",
        height: int = 480,
        crosshair_color: Sequence[float] = _CROSSHAIR_COLOR,
        background: Sequence[float] = (0.0, 0.0, 0.0, 1.0),
        title: str | None = None,
    ) -> None:
        items = (
            [layers]
            if isinstance(layers, Layer | str | os.PathLike) or not isinstance(layers, Sequence)
            else list(layers)
        )
        if not items:
            raise ViewerError("a view needs at least one layer (the base volume)")
        self.layers: list[Layer] = [
            item if isinstance(item, Layer) else Layer(item) for item in items
        ]
        if crosshair is not None:
            point = tuple(float(c) for c in crosshair)
            if len(point) != 3 or not all(np.isfinite(point)):
                raise ViewerError(
                    f"crosshair must be 3 finite world coordinates in mm, got {crosshair!r}"
                )
            self.crosshair: tuple[float, float, float] | None = (point[0], point[1], point[2])
        else:
            self.crosshair = None
        if slice_type not in _SLICE_TYPES:
            raise ViewerError(
                f"slice_type must be one of {sorted(_SLICE_TYPES)}, got {slice_type!r}"
            )
        if convention not in ("neurological", "radiological"):
            raise ViewerError(
                f"convention must be 'neurological' or 'radiological', got {convention!r}"
            )
        if int(height) < 64:
            raise ViewerError(f"height must be at least 64 pixels, got {height}")
        self.slice_type: SliceType = slice_type
        self.convention: Convention = convention
        self.height = int(height)
        self.crosshair_color = _rgba(crosshair_color, "crosshair_color")
        self.background = _rgba(background, "background")
        self.title = title

    def __repr__(self) -> str:
        layers = ", ".join(repr(layer) for layer in self.layers)
        crosshair = "" if self.crosshair is None else f", crosshair={self.crosshair}"
        return f"View([{layers}], slice_type={self.slice_type!r}{crosshair})"

    def spec(self) -> dict[str, Any]:
        """The JSON-able description the browser runtime (``viewer.js``) builds the viewer from.

        Keys: ``layers`` (each with the layer's gzipped NIfTI as base64, colormap, opacity
        and display range), ``slice_type`` (NiiVue's enum), ``crosshair_mm``,
        ``crosshair_color``, ``background``, ``radiological``, ``niivue_version``.
        """
        return {
            "layers": [layer.spec(i) for i, layer in enumerate(self.layers)],
            "slice_type": _SLICE_TYPES[self.slice_type],
            "crosshair_mm": None if self.crosshair is None else list(self.crosshair),
            "crosshair_color": list(self.crosshair_color),
            "background": list(self.background),
            "radiological": self.convention == "radiological",
            "niivue_version": niivue_bundle().version,
        }

    def html(self) -> str:
        """A standalone HTML page showing the view, NiiVue inlined: no network needed."""
        bundle = niivue_bundle()
        title = self.title or f"{self.layers[0].label(0)} — brrrr viewer"
        # JSON in a <script> element: "<" as \u003c, so no "</script" or "<!--" can appear.
        spec = json.dumps(self.spec(), separators=(",", ":")).replace("<", "\\u003c")
        background = "rgb({:.0f},{:.0f},{:.0f})".format(*(255 * c for c in self.background[:3]))
        return _PAGE.format(
            title=html.escape(title),
            background=background,
            version=bundle.version,
            license=bundle.license,
            niivue=inline_script(static_text(bundle.path.name)),
            runtime=inline_script(static_text("viewer.js")),
            spec=spec,
        )

    def to_html(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`html` to ``path`` atomically and return the path.

        Raises:
            FileWriteError: The folder does not exist or the write fails.
        """
        from brrrr.core.files import atomic_write

        return atomic_write(path, self.html().encode("utf-8"))

    def widget(self) -> ViewerWidget:
        """A live Jupyter widget of the view (anywidget).

        Its ``crosshair`` trait follows the user's clicks, in world mm, and moves the
        crosshair when set from Python; setting ``spec`` (e.g. ``w.spec = other.spec()``)
        reloads the layers.

        Raises:
            MissingDependencyError: anywidget is not installed
                (``pip install "brrrr-demos[jupyter]"``).
        """
        from brrrr.demos.viewer.widget import ViewerWidget

        return ViewerWidget.from_view(self)

    def _repr_html_(self) -> str:
        """Jupyter's rich display: the standalone page in an ``<iframe srcdoc>``."""
        return viewer_html(self)


def volume_html(volume: Volume) -> str:
    """A volume alone in the viewer, for Jupyter's display of a bare ``Volume``.

    Registered under the entry-point group ``brrrr.html_repr``, so that ``brrrr.core``'s
    ``Volume._repr_html_`` draws with NiiVue when ``brrrr-demos`` is installed, without
    ``brrrr.core`` importing this package.
    """
    return viewer_html(View(volume))


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="brrrr-demos viewer; NiiVue {version} ({license})">
<title>{title}</title>
<style>
html, body {{ margin: 0; height: 100%; background: {background}; overflow: hidden; }}
#brrrr-viewer {{ width: 100%; height: 100%; }}
</style>
</head>
<body>
<div id="brrrr-viewer" data-brrrr-status="starting"></div>
<script>/* NiiVue {version} ({license}): see NIIVUE_LICENSE in brrrr-demos */
{niivue}
</script>
<script>
{runtime}
</script>
<script type="application/json" id="brrrr-viewer-spec">{spec}</script>
<script>
brrrrViewer.mount(
  document.getElementById("brrrr-viewer"),
  JSON.parse(document.getElementById("brrrr-viewer-spec").textContent)
);
</script>
</body>
</html>
"""
