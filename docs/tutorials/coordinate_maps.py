# ruff: noqa: E402  (a tutorial imports each tool in the cell that first uses it)
"""Tutorial: peak coordinates → brain maps (MKDA, ALE), equal to NiMARE's kernels.

Runs offline on NiMARE's shipped studyset ``nback_vs_flanker_studyset_2026-07`` (906 analyses,
9492 peaks) and writes its figure to the output folder:

    python docs/tutorials/coordinate_maps.py [OUT]      # or BRRRR_TUTORIAL_OUT=OUT
"""

# %% Setup
# --8<-- [start:setup]
import os
import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

OUT = Path(
    sys.argv[1] if len(sys.argv) > 1 else os.environ.get("BRRRR_TUTORIAL_OUT", "tutorial-output")
)
OUT.mkdir(parents=True, exist_ok=True)
# --8<-- [end:setup]

# %% Peaks of NiMARE's studyset
# --8<-- [start:peaks]
from nimare.studyset import Studyset
from nimare.utils import get_resource_path

from brrrr.preprocess.kernels import ALE, MKDA, PeakTable, Template, iter_maps, peaks_to_maps

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # NiMARE notes the peaks it leaves in their own space
    studyset = Studyset(Path(get_resource_path()) / "nback_vs_flanker_studyset_2026-07")
peaks = PeakTable.from_nimare(studyset)  # one row per analysis, sample sizes from metadata
print(peaks)
template = Template.mni152(resolution_mm=2, mask="brain")  # NiMARE's default masker grid
print(f"template {template.shape}, {template.n_voxels} voxels in the brain mask")
# --8<-- [end:peaks]

# %% All maps, in batches
# --8<-- [start:density]
# MKDA: a 10 mm sphere of 1s around each peak. Summed over analyses: how many analyses
# report a peak near each voxel. 906 maps at once would be 0.8 GB, so take them in batches.
density = torch.zeros(template.n_voxels)
for batch in iter_maps(peaks, kernel=MKDA(radius_mm=10), template=template, batch_size=128):
    density += batch.maps.sum(dim=0)
print(f"at most {int(density.max())} of {peaks.n_studies} analyses near one voxel")
# --8<-- [end:density]

# %% The same numbers as NiMARE
# --8<-- [start:nimare]
from nimare.meta.kernel import ALEKernel, MKDAKernel

ids = sorted(studyset.ids)[:8]
few = PeakTable.from_nimare(studyset.slice(ids))
# ALE's width follows the sample size; few analyses here record one, so fix it at 10 mm
# (ALE() alone would say which studies lack it).
ours = peaks_to_maps(few, kernel=ALE(fwhm_mm=10.0), template=template).numpy()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    theirs = ALEKernel(fwhm=10.0).transform(studyset.slice(ids), return_type="array")
    theirs_mkda = MKDAKernel(r=10).transform(studyset.slice(ids), return_type="array")
ours_mkda = peaks_to_maps(few, kernel=MKDA(radius_mm=10), template=template).numpy()
print(
    f"ALE: max |brrrr − NiMARE| = {np.abs(ours - theirs).max():.1e}; "
    f"MKDA: {np.abs(ours_mkda - theirs_mkda).max():.1e}"
)
# --8<-- [end:nimare]


# %% Plot
# --8<-- [start:plot]
def mip(flat: np.ndarray, axis: int) -> np.ndarray:
    """Maximum-intensity projection of a masked map along one grid axis."""
    return np.rot90(template.to_volume(flat).data.max(axis=axis))


fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
for ax, axis, name in zip(axes[:2], (0, 2), ("sagittal", "axial"), strict=True):
    ax.imshow(mip(density.numpy(), axis), cmap="hot")
    ax.set_title(f"MKDA density, {name} MIP")
row = int(np.argmax(few.peaks_per_study))
ax = axes[2]
ax.imshow(mip(ours[row], 2), cmap="viridis")
ax.set_title(f"ALE map of {few.study_ids[row]}"[:40])
axes[3].imshow(mip(np.abs(ours[row] - theirs[row]), 2), cmap="gray", vmin=0, vmax=1e-6)
axes[3].set_title("|brrrr − NiMARE| (black = 0)")
for ax in axes:
    ax.axis("off")
fig.tight_layout()
fig.savefig(OUT / "coordinate_maps.png", dpi=100)
# --8<-- [end:plot]
