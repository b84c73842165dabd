"""Embedding a view in another page: an ``<iframe srcdoc>`` for Gradio and notebooks.

Gradio 6 renders ``gr.HTML`` content through ``innerHTML``, where ``<script>`` elements
never run (gradio warns about them). A document in an iframe's ``srcdoc`` is a page of its
own, so its scripts do run; it also keeps NiiVue's globals, styles and WebGL context apart
from the host page (and from require.js's AMD ``define`` in classic Jupyter, which would
capture the UMD bundle). The iframe is not sandboxed: a sandboxed (opaque-origin) frame
is drawn by another renderer process, which headless Chromium's screenshots do not wait for,
so the tests could not see it draw; the page holds only NiiVue and our runtime.

Example:
    >>> from brrrr.core import samples
    >>> from brrrr.demos.viewer import View, viewer_html
    >>> snippet = viewer_html(View(samples.phantom(shape=(32, 38, 32), spacing=6.0)))
    >>> snippet.startswith("<iframe")
    True
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from brrrr.core.errors import MissingDependencyError

if TYPE_CHECKING:
    import gradio as gr

    from brrrr.demos.viewer.view import View

__all__ = ["gradio_viewer", "viewer_html"]


def viewer_html(view: View, *, height: int | None = None) -> str:
    """The view as one ``<iframe srcdoc=…>`` element, for ``gr.HTML`` or any HTML page.

    Args:
        view: The view.
        height: Height in CSS pixels (default: ``view.height``); the width is 100 %.

    Returns:
        An HTML string holding the whole standalone page (NiiVue included) in ``srcdoc``.
    """
    pixels = view.height if height is None else int(height)
    title = html.escape(f"NiiVue viewer: {view.layers[0].label(0)}", quote=True)
    page = html.escape(view.html(), quote=True)
    return (
        f'<iframe class="brrrr-viewer" title="{title}" '
        f'style="display:block;width:100%;height:{pixels}px;border:0" '
        f'srcdoc="{page}"></iframe>'
    )


def gradio_viewer(view: View | None = None, *, height: int | None = None, **kwargs: Any) -> gr.HTML:
    """A ``gr.HTML`` component showing ``view``; update it with ``viewer_html(other)``.

    Args:
        view: The view to show first (none: an empty component, to fill from an event).
        height: Height in CSS pixels (default: ``view.height``).
        **kwargs: Passed on to ``gr.HTML`` (``label``, ``elem_id``, ``visible``…).

    Raises:
        MissingDependencyError: gradio is not installed (``pip install "brrrr-demos[gradio]"``).
    """
    try:
        import gradio as gr
    except ImportError as exc:
        raise MissingDependencyError(
            f'the Gradio viewer needs gradio ({exc}): pip install "brrrr-demos[gradio]"'
        ) from None
    value = None if view is None else viewer_html(view, height=height)
    return gr.HTML(value, **kwargs)
