"""Jupyter: the anywidget and ``_repr_html_`` of a View, in a notebook run by nbclient, then drawn
in headless Chromium (the HTML output as it is; the widget's front end from the saved widget
state, with a stand-in for the notebook's widget model)."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from brrrr.core import Volume
from brrrr.core.errors import MissingDependencyError
from brrrr.demos import testing
from brrrr.demos.viewer import Layer, View, niivue_bundle

Keep = Callable[[testing.Capture, str], None]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def test_widget_carries_the_view_and_the_shipped_niivue(phantom: tuple[Volume, Volume]) -> None:
    pytest.importorskip("anywidget")
    image, lesion = phantom
    view = View(
        [Layer(image), Layer(lesion, colormap="red")], crosshair=(1.0, 2.0, 3.0), height=300
    )
    widget = view.widget()
    assert widget.spec == view.spec()
    assert widget.crosshair == [1.0, 2.0, 3.0]
    assert widget.height == 300
    assert hashlib.sha256(widget._niivue_js.encode()).hexdigest() == niivue_bundle().sha256
    assert "export default { render }" in widget._esm
    widget.crosshair = [0.0, 0.0, 0.0]
    assert widget.get_state()["crosshair"] == [0.0, 0.0, 0.0]


def test_widget_needs_the_jupyter_extra(
    monkeypatch: pytest.MonkeyPatch, phantom: tuple[Volume, Volume]
) -> None:
    monkeypatch.setitem(sys.modules, "anywidget", None)
    monkeypatch.delitem(sys.modules, "brrrr.demos.viewer.widget", raising=False)
    with pytest.raises(MissingDependencyError, match=r'pip install "brrrr-demos\[jupyter\]"'):
        View(phantom[0]).widget()


_NOTEBOOK = [
    """from brrrr.core import samples
from brrrr.demos.viewer import Layer, View

image, lesion = samples.lesion_phantom(shape=(64, 76, 64), spacing=3.0)
view = View([Layer(image), Layer(lesion, colormap="red", opacity=0.7)],
            crosshair=(-30.0, 12.0, 16.0), height=500)""",
    "view",
    "widget = view.widget()\nwidget",
    "widget.crosshair = [0.0, 10.0, 5.0]\nwidget.crosshair",
    "image",  # a bare brrrr.core Volume: its _repr_html_ draws through brrrr-demos' entry point
]

# A page that runs the widget's front end (its `_esm`, from the saved widget state) the way
# anywidget does: render({model, el}) with a model exposing get/set/on/off/save_changes.
# After rendering it plays Python setting `crosshair` back to the lesion.
_HARNESS = """<!doctype html>
<html><head><meta charset="utf-8"><style>body {{ margin: 0; background: #000; }}</style></head>
<body><div id="out"></div>
<script type="application/json" id="state">{state}</script>
<script type="module">
const state = JSON.parse(document.getElementById("state").textContent);
const handlers = {{}};
const model = {{
  get: (key) => state[key],
  set: (key, value) => {{ state[key] = value; }},
  save_changes: () => {{}},
  on: (event, fn) => {{ (handlers[event] ||= []).push(fn); }},
  off: (event, fn) => {{ handlers[event] = (handlers[event] || []).filter((f) => f !== fn); }},
}};
const url = URL.createObjectURL(new Blob([state._esm], {{ type: "text/javascript" }}));
const widget = (await import(url)).default;
await widget.render({{ model, el: document.getElementById("out") }});
state.crosshair = {crosshair};
for (const fn of handlers["change:crosshair"] || []) fn();
</script></body></html>
"""


def _run_notebook(folder: Path) -> Any:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("anywidget")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in _NOTEBOOK])
    client = nbclient.NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        store_widget_state=True,
        resources={"metadata": {"path": str(folder)}},
    )
    client.execute()
    nbformat.write(notebook, folder / "viewer.ipynb")
    return notebook


@pytest.mark.slow
def test_notebook_outputs_draw_in_chromium(
    chromium: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    phantom: tuple[Volume, Volume],
    lesion_mm: tuple[float, float, float],
    keep_screenshot: Keep,
) -> None:
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    notebook = _run_notebook(tmp_path)
    cells = notebook.cells

    # `view` at the end of a cell: _repr_html_, the standalone page in an iframe.
    (html_output,) = cells[1].outputs
    snippet = html_output["data"]["text/html"]
    assert snippet.startswith('<iframe class="brrrr-viewer"')
    assert f"NiiVue {niivue_bundle().version} (BSD-2-Clause)" in snippet
    page = tmp_path / "repr_html.html"
    page.write_text(f'<!doctype html><html><body style="margin:0">{snippet}</body></html>')
    shot = testing.capture(page, tmp_path / "repr_html.png", size=(900, 540))
    pixels = shot.pixels()
    gray, red = testing.gray_mask(pixels).mean(), testing.red_mask(pixels).mean()
    print(f"notebook _repr_html_: gray {gray:.3f}, red {red:.4f} of {pixels.shape[:2]}")
    assert gray > 0.1
    assert red > 0.001
    keep_screenshot(shot, "demos-viewer-notebook")

    # `widget` at the end of a cell: a widget view, its state saved in the notebook.
    (widget_output,) = cells[2].outputs
    model_id = widget_output["data"][WIDGET_VIEW]["model_id"]
    saved = notebook.metadata["widgets"][WIDGET_STATE]["state"][model_id]["state"]
    assert hashlib.sha256(saved["_niivue_js"].encode()).hexdigest() == niivue_bundle().sha256
    assert len(saved["spec"]["layers"]) == 2
    assert saved["crosshair"] == [0.0, 10.0, 5.0]  # set from Python in the last cell
    assert cells[3].outputs[0]["data"]["text/plain"] == "[0.0, 10.0, 5.0]"
    (volume_output,) = cells[4].outputs
    assert volume_output["data"]["text/html"].startswith('<iframe class="brrrr-viewer"')
    assert volume_output["data"]["text/plain"].startswith("Volume(shape=(64, 76, 64)")

    state = json.dumps(saved).replace("<", "\\u003c")
    harness = tmp_path / "widget.html"
    harness.write_text(_HARNESS.format(state=state, crosshair=json.dumps(list(lesion_mm))))
    shot = testing.capture(harness, tmp_path / "widget.png", size=(900, 500))
    (viewer,) = testing.viewer_states(shot.dom)
    assert viewer["status"] == "ready", viewer
    np.testing.assert_allclose(viewer["info"]["crosshair_mm"], lesion_mm, atol=1e-3)
    for read in viewer["info"]["volumes"]:
        np.testing.assert_allclose(read["affine"], phantom[0].affine, atol=1e-4)
        assert read["dims"] == list(phantom[0].shape)
    pixels = shot.pixels()
    gray, red = testing.gray_mask(pixels).mean(), testing.red_mask(pixels).mean()
    print(f"notebook widget: gray {gray:.3f}, red {red:.4f} of {pixels.shape[:2]}")
    assert gray > 0.1
    assert red > 0.001
    keep_screenshot(shot, "demos-viewer-widget")
