"""brrrr.demos: the NiiVue viewer, and the Gradio demos of neuroimaging-go-brrrr.

Modules:
    viewer: :class:`~brrrr.demos.viewer.View` / :class:`~brrrr.demos.viewer.Layer`, rendered
        as a standalone HTML page, a Jupyter output or widget, or a Gradio component.
    testing: headless Chromium screenshots and pixel checks, for the viewer's and the apps'
        tests.
    errors: :class:`~brrrr.demos.errors.ViewerError` and :class:`~brrrr.demos.errors.LayerError`.
    cli: ``brrrr view IMAGE [--overlay MASK] -o page.html``.

Nothing heavy is imported here: gradio and anywidget only load in the functions that
need them.
"""

from __future__ import annotations

__all__ = ["__version__"]
__version__ = "0.1.0"
