"""viewer_html / gradio_viewer: the viewer inside a real Gradio 6 app, drawn in headless Chromium."""

from __future__ import annotations

import html
import re
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from brrrr.core import Volume
from brrrr.core.errors import MissingDependencyError
from brrrr.demos import testing
from brrrr.demos.viewer import Layer, View, gradio_viewer, viewer_html

Keep = Callable[[testing.Capture, str], None]


def test_viewer_html_is_an_iframe_holding_the_page(phantom: tuple[Volume, Volume]) -> None:
    view = View(phantom[0], height=420)
    snippet = viewer_html(view)
    assert snippet.startswith("<iframe")
    assert snippet.endswith("</iframe>")
    assert "height:420px" in snippet
    assert "height:200px" in viewer_html(view, height=200)
    # Gradio's gr.HTML inserts its value with innerHTML: a bare <script> would never run,
    # so there is none outside the srcdoc attribute (whose document runs its own scripts).
    assert not re.search(r"<script[\s>]", snippet)
    srcdoc = re.search(r'srcdoc="([^"]*)"', snippet)
    assert srcdoc is not None
    assert html.unescape(srcdoc.group(1)) == view.html()


def test_gradio_viewer_needs_the_gradio_extra(
    monkeypatch: pytest.MonkeyPatch, phantom: tuple[Volume, Volume]
) -> None:
    monkeypatch.setitem(sys.modules, "gradio", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "brrrr-demos\[gradio\]"'):
        gradio_viewer(View(phantom[0]))


def test_gradio_viewer_is_a_gr_html_without_script_warnings(phantom: tuple[Volume, Volume]) -> None:
    gr = pytest.importorskip("gradio")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        component = gradio_viewer(View(phantom[0]), label="T1")
    assert isinstance(component, gr.HTML)
    assert component.value == viewer_html(View(phantom[0]))
    assert gradio_viewer().value is None


@pytest.mark.slow
def test_a_gradio_app_draws_the_viewer(
    chromium: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    phantom: tuple[Volume, Volume],
    lesion_mm: tuple[float, float, float],
    keep_screenshot: Keep,
) -> None:
    gr = pytest.importorskip("gradio")
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    image, lesion = phantom
    view = View(
        [Layer(image), Layer(lesion, colormap="red", opacity=0.7)], crosshair=lesion_mm, height=560
    )
    with gr.Blocks(title="brrrr viewer test") as app:
        gr.Markdown("# Lesion viewer")
        gradio_viewer(view)
    # Chromium resolves no host but 127.0.0.1 (testing.CHROMIUM_FLAGS): gradio's frontend
    # comes from the installed package, NiiVue from the page.
    with testing.serve_gradio(app) as url:
        assert url.startswith("http://127.0.0.1:")
        shot = testing.capture(url, tmp_path / "gradio.png", size=(1000, 800))
    assert "Lesion viewer" in shot.dom  # gradio's frontend rendered the app
    assert 'class="brrrr-viewer"' in shot.dom
    pixels = shot.pixels()
    tissue, red = testing.gray_mask(pixels).mean(), testing.red_mask(pixels).mean()
    print(f"gradio: gray (head) {tissue:.3f}, red (lesion) {red:.4f} of {pixels.shape[:2]} pixels")
    # The page is white and the empty canvas black: mid-gray pixels are the drawn head.
    assert tissue > 0.08
    assert red > 0.001
    keep_screenshot(shot, "demos-viewer-gradio")


def test_a_bare_volume_displays_in_the_viewer(phantom: tuple[Volume, Volume]) -> None:
    # brrrr.core's Volume._repr_html_ finds brrrr-demos through the brrrr.html_repr entry point.
    snippet = phantom[0]._repr_html_()
    assert snippet is not None
    assert snippet.startswith('<iframe class="brrrr-viewer"')
    assert snippet == viewer_html(View(phantom[0]))
