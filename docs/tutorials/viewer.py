# ruff: noqa: E402  (a tutorial imports each tool in the cell that first uses it)
"""Tutorial: the NiiVue viewer of ``brrrr.demos``, as a standalone page, in Jupyter and in Gradio.

Runs offline on the built-in lesion phantom. It writes the standalone page and a static
matplotlib figure of the same three planes at the view's crosshair; where headless Chromium
is found (``apt-get install chromium``, or set ``BRRRR_CHROMIUM``) it also screenshots the page:

    python docs/tutorials/viewer.py [OUT]      # or BRRRR_TUTORIAL_OUT=OUT
"""

# %% Setup
# --8<-- [start:setup]
import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

OUT = Path(
    sys.argv[1] if len(sys.argv) > 1 else os.environ.get("BRRRR_TUTORIAL_OUT", "tutorial-output")
)
OUT.mkdir(parents=True, exist_ok=True)
# --8<-- [end:setup]

# %% Volumes to show
# --8<-- [start:volumes]
from brrrr.core import samples

# A T1-like head phantom (96×114×96, 2 mm, RAS) and its lesion mask (uint8, same grid).
image, lesion = samples.lesion_phantom()
# A smooth "probability" around the lesion, as a segmentation model would give.
i, j, k = np.indices(image.shape)
centre = np.argwhere(lesion.data > 0).mean(axis=0)
distance_mm = 2.0 * np.sqrt((i - centre[0]) ** 2 + (j - centre[1]) ** 2 + (k - centre[2]) ** 2)
probability = image.with_data(np.exp(-((distance_mm / 14.0) ** 2)).astype(np.float32))
print(image, lesion, sep="\n")
# --8<-- [end:volumes]

# %% A view: a base layer and overlays
# --8<-- [start:view]
from brrrr.demos.viewer import Layer, View

view = View(
    [
        Layer(image, name="T1 phantom"),  # the base layer: gray, opaque
        # Hidden below 0.2; drawn from 0.2 (the colormap's first colour) to 1 (its last).
        Layer(
            probability,
            colormap="warm",
            opacity=0.5,
            threshold=0.2,
            cal_max=1.0,
            name="probability",
        ),
        Layer(lesion, colormap="red", opacity=0.7, name="lesion mask"),
    ],
    crosshair=centre @ image.affine[:3, :3].T + image.affine[:3, 3],  # world mm, RAS+
    slice_type="multiplanar",  # or "axial", "coronal", "sagittal", "render"
    title="Lesion phantom",
)
print(view)
page = view.to_html(OUT / "viewer.html")  # one file, NiiVue inlined: opens offline
print(f"{page}: {page.stat().st_size / 1e6:.1f} MB")
# --8<-- [end:view]

# %% Notebooks and Gradio
# --8<-- [start:embed]
import gradio as gr

from brrrr.demos.viewer import gradio_viewer, viewer_html

# In Jupyter, a view as the last expression of a cell shows itself (_repr_html_), and
# view.widget() is a live widget (pip install "brrrr-demos[jupyter]") whose `crosshair`
# trait follows the clicks, in world mm.
widget = view.widget()
print(f"widget {type(widget).__name__}, crosshair {tuple(round(c, 1) for c in widget.crosshair)}")

# In a Gradio app (pip install "brrrr-demos[gradio]"): a gr.HTML holding the page in an
# <iframe srcdoc>; an event updates it with viewer_html(another_view).
with gr.Blocks() as demo:
    shown = gradio_viewer(view, height=420, label="viewer")
    button = gr.Button("lesion only")
    button.click(lambda: viewer_html(View([image, lesion]), height=420), None, shown)
print(f"Gradio app with {len(demo.blocks)} blocks; demo.launch() serves it")
# --8<-- [end:embed]

# %% A static figure of the same planes
# --8<-- [start:figure]
# matplotlib colormaps close to NiiVue's, for a figure in a paper or these docs.
from matplotlib.colors import LinearSegmentedColormap

CMAPS = {
    "gray": "gray",
    "warm": "autumn_r",  # NiiVue's warm: orange to yellow
    "red": LinearSegmentedColormap.from_list("niivue_red", ["black", "red"]),
}
centre_voxel = np.round(centre).astype(int)
cuts = {
    "sagittal": np.s_[centre_voxel[0], :, :],
    "coronal": np.s_[:, centre_voxel[1], :],
    "axial": np.s_[:, :, centre_voxel[2]],
}
fig, axes = plt.subplots(1, 3, figsize=(11, 4.2))
for ax, (plane, cut) in zip(axes, cuts.items(), strict=True):
    for index, layer in enumerate(view.layers):
        low, high = layer.display_range()  # as NiiVue draws it
        plane_data = np.rot90(layer.volume.data[cut].astype(np.float32))
        if index > 0:  # overlays: hidden below their threshold (or zero), see-through
            hidden = plane_data < (layer.threshold if layer.threshold is not None else 1e-6)
            plane_data = np.ma.masked_where(hidden, plane_data)
        ax.imshow(plane_data, cmap=CMAPS[layer.colormap], vmin=low, vmax=high, alpha=layer.opacity)
    ax.set_title(plane)
    ax.axis("off")
fig.suptitle(f"{view.title}: {', '.join(layer.label(i) for i, layer in enumerate(view.layers))}")
fig.tight_layout()
fig.savefig(OUT / "viewer.png", dpi=100)
# --8<-- [end:figure]

# %% A screenshot of the page in headless Chromium (optional)
# --8<-- [start:screenshot]
from brrrr.demos import testing

if testing.find_chromium() is None:
    print("headless Chromium not found: no screenshot (apt-get install -y chromium)")
else:
    shot = testing.capture(page, OUT / "viewer_page.png", size=(1000, 700))  # WebGL on SwiftShader
    state = testing.viewer_states(shot.dom)[0]
    print(f"viewer {state['status']}; screenshot {shot.screenshot}")
# --8<-- [end:screenshot]

# %% The demos
# --8<-- [start:demo]
# The same viewer is what the Gradio demos show. From a shell:
#   brrrr view image.nii.gz --overlay mask.nii.gz -o view.html   # a standalone page
#   brrrr demo                  # explorer, stroke and atlas tabs on http://127.0.0.1:7860
#   brrrr demo --tab stroke     # one tab only
#   brrrr demo --check          # start, segment a sample case through the app's API, stop
# --8<-- [end:demo]
