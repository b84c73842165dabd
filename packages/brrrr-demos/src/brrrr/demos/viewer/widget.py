"""`ViewerWidget`: a :class:`~brrrr.demos.viewer.View` as a live Jupyter widget (anywidget).

Needs the ``jupyter`` extra (``pip install "brrrr-demos[jupyter]"``); importing this module
without anywidget raises :class:`~brrrr.core.errors.MissingDependencyError`. Make one with
:meth:`View.widget() <brrrr.demos.viewer.View.widget>`.

The front end (``static/widget.js``) loads the shipped NiiVue bundle from the widget's own
state, so it works offline and in a saved notebook's widget state.

Example:
    >>> from brrrr.core import samples
    >>> from brrrr.demos.viewer import View
    >>> w = View(samples.phantom(shape=(32, 38, 32), spacing=6.0)).widget()
    >>> w.crosshair = [0.0, 10.0, 5.0]     # moves the crosshair in the notebook
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from brrrr.core.errors import MissingDependencyError
from brrrr.demos.viewer.assets import niivue_bundle, static_text

try:
    import anywidget
    import traitlets
except ImportError as exc:
    raise MissingDependencyError(
        f'the Jupyter viewer needs anywidget ({exc}): pip install "brrrr-demos[jupyter]"'
    ) from None

if TYPE_CHECKING:
    from brrrr.demos.viewer.view import View

__all__ = ["ViewerWidget"]


class ViewerWidget(anywidget.AnyWidget):
    """A NiiVue viewer in a notebook.

    Traits (synced with the browser):
        spec: The view's :meth:`~brrrr.demos.viewer.View.spec`; set it to show other layers.
        crosshair: ``[x, y, z]`` in world RAS+ mm; follows the user's clicks, and moves the
            crosshair when set from Python (``None`` until either happens).
        height: Height in CSS pixels.
    """

    _esm = static_text("widget.js")
    _niivue_js = traitlets.Unicode("").tag(sync=True)
    _viewer_js = traitlets.Unicode("").tag(sync=True)
    spec = traitlets.Dict().tag(sync=True)
    crosshair = traitlets.List(traitlets.Float(), allow_none=True, default_value=None).tag(
        sync=True
    )
    height = traitlets.Int(480).tag(sync=True)

    @classmethod
    def from_view(cls, view: View) -> ViewerWidget:
        """The widget of ``view`` (NiiVue and the runtime travel in the widget's state)."""
        return cls(
            _niivue_js=static_text(niivue_bundle().path.name),
            _viewer_js=static_text("viewer.js"),
            spec=view.spec(),
            crosshair=None if view.crosshair is None else list(view.crosshair),
            height=view.height,
        )
