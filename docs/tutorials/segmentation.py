# ruff: noqa: E402  (a tutorial imports each tool in the cell that first uses it)
"""Tutorial: stroke-lesion segmentation with the shipped model, scored with ISLES'22 metrics.

Runs offline on synthetic DWI/ADC/FLAIR cases the code draws from a seed and writes its
figure to the output folder:

    python docs/tutorials/segmentation.py [OUT]      # or BRRRR_TUTORIAL_OUT=OUT
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

# %% A synthetic case
# --8<-- [start:case]
from brrrr.models.segmentation import synthetic_stroke_case

# Lesions bright on DWI and dark on ADC; size, count, position, contrast and noise vary
# with the seed. Seeds used for training the shipped model are not reused here.
case = synthetic_stroke_case(90_001)
print(case.dwi, f"{case.n_lesions} lesion(s)")
# --8<-- [end:case]

# %% Segment
# --8<-- [start:segment]
from brrrr.models.segmentation import load_synthetic_lesion_model

model = load_synthetic_lesion_model()  # a small SegResNet trained on synthetic cases only
result = model.segment(case.inputs(flair=False))  # {"dwi": Volume, "adc": Volume}; paths work too
print(f"probability {result.probability.shape}, mask of {int(result.mask.data.sum())} voxels")
# --8<-- [end:segment]

# %% ISLES'22 metrics
# --8<-- [start:metrics]
from brrrr.models.segmentation import evaluate_case

metrics = evaluate_case(result.mask, case.mask)  # spacing from the ground truth's grid
for name, value in metrics.to_dict().items():
    print(f"{name:>30}: {value:.3g}")
# --8<-- [end:metrics]

# %% Plot
# --8<-- [start:plot]
truth = case.mask.data.astype(bool)
k = int(np.argmax(truth.sum(axis=(0, 1)))) if truth.any() else truth.shape[2] // 2
fig, axes = plt.subplots(1, 4, figsize=(13, 3.8))
panels = [
    (case.dwi.data[:, :, k], "DWI", "gray"),
    (case.adc.data[:, :, k], "ADC", "gray"),
    (result.probability.data[:, :, k], "lesion probability", "magma"),
]
for ax, (plane, title, cmap) in zip(axes, panels, strict=False):
    ax.imshow(np.rot90(plane), cmap=cmap)
    ax.set_title(title)
ax = axes[3]
ax.imshow(np.rot90(case.dwi.data[:, :, k]), cmap="gray")
ax.contour(np.rot90(truth[:, :, k]), levels=[0.5], colors="lime", linewidths=1)
ax.contour(np.rot90(result.mask.data[:, :, k] > 0), levels=[0.5], colors="red", linewidths=1)
ax.set_title(f"truth (green), model (red): Dice {metrics.dice:.2f}")
for ax in axes:
    ax.axis("off")
fig.tight_layout()
fig.savefig(OUT / "segmentation.png", dpi=100)
# --8<-- [end:plot]

# %% From the command line
# --8<-- [start:cli]
from brrrr.core import save_volume

for name, volume in {**case.inputs(flair=False), "mask": case.mask}.items():
    save_volume(volume, OUT / f"case_{name}.nii.gz")
# Then, in a shell:
#   brrrr segment stroke --dwi case_dwi.nii.gz --adc case_adc.nii.gz --out pred.nii.gz
#   brrrr segment evaluate PRED_DIR GT_DIR --csv metrics.csv
# --8<-- [end:cli]
