# ruff: noqa: E402  (a tutorial imports each tool in the cell that first uses it)
"""Tutorial: NeuroVFM preparation — load, prepare, tokenise, cache.

Runs offline on the built-in head phantoms (an MRI with thick axial slices and a CT) and
writes its figures to the output folder:

    python docs/tutorials/neurovfm_preparation.py [OUT]      # or BRRRR_TUTORIAL_OUT=OUT
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

# %% A dataset in NeuroVFM's layout
# --8<-- [start:data]
from brrrr.core import samples, save_volume

raw = OUT / "dataset" / "raw"
(raw / "study_01").mkdir(parents=True, exist_ok=True)
(raw / "study_02").mkdir(parents=True, exist_ok=True)
# An MRI with 1.5 mm in-plane and 5 mm axial slices, and a head CT in Hounsfield units.
mri = samples.phantom(shape=(112, 134, 34), spacing=(1.5, 1.5, 5.0), axcodes="LPS")
ct = samples.phantom(shape=(84, 100, 40), spacing=(2.0, 2.0, 4.0), modality="ct")
save_volume(mri, raw / "study_01" / "T1.nii.gz")
save_volume(ct, raw / "study_02" / "head_ct.nii.gz")
print(mri)
# --8<-- [end:data]

# %% Prepare one image
# --8<-- [start:prepare]
from brrrr.preprocess import load_and_prepare

# RPI, slice axis from the geometry (the 5 mm one), 1×1×4 mm, crop/pad to multiples of
# 16 in-plane and 4 through-plane, percentile clipping to [0, 1].
img, mask, view = load_and_prepare(raw / "study_01" / "T1.nii.gz", mode="mri")
print(
    f"{view.plane} slices, prepared {img.shape} {img.dtype}, range {img.min():.2f}..{img.max():.2f}"
)

ct_img, ct_mask, ct_view = load_and_prepare(raw / "study_02" / "head_ct.nii.gz", mode="ct")
print(f"CT windows as channels: {ct_img.shape}")
# --8<-- [end:prepare]

# %% Tokens
# --8<-- [start:tokens]
from brrrr.preprocess import tokenize, untokenize

# `mask` is the field of view (padding is False); add "above air" for a head mask. A token is
# background when all its voxels are (background_rule="all"; NeuroVFM's own rule is "any").
head = mask & (img[0] > 0.1)
tokens, coords, filtered, size = tokenize(img, head, background_rule="all")
print(
    f"{tokens.shape[0]} tokens of {tokens.shape[1]} voxels on a {size.tolist()} grid; "
    f"{int(filtered.sum())} are background"
)
back = untokenize(tokens, coords, size)
assert np.array_equal(back, img[0])  # the exact inverse: (1, D, H, W) → (D, H, W)
# --8<-- [end:tokens]

# %% A cache of the whole dataset
# --8<-- [start:cache]
from brrrr.preprocess import CacheManager, DatasetMetadata

root = OUT / "dataset"
DatasetMetadata.from_directory(root, {"*_ct.nii.gz": "ct", "*": "mri"}).save(root / "metadata.json")
cache = CacheManager(root)
report = cache.build(num_workers=0, progress="none")  # uint8 .npy, content-addressed, resumable
print(report)
cached = cache.load_image("study_01", "T1", window="mri")  # memory-mapped
print(f"cached {cached.data.shape} {cached.data.dtype}; tokens per image {cache.token_counts()}")
# --8<-- [end:cache]

# %% Plot
# --8<-- [start:plot]
fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
src = mri.reorient("RAS").data
axes[0].imshow(np.rot90(src[src.shape[0] // 2]), cmap="gray", aspect=5.0 / 1.5)
axes[0].set_title("source, sagittal (5 mm slices)")
d = img.shape[1] // 2
axes[1].imshow(img[0, d], cmap="gray")
axes[1].set_title(f"prepared {view.plane} slice {d} of {img.shape[1]}")
top = 2  # a token layer near the vertex, where the head is small
background = np.zeros(size.tolist(), dtype=bool)
background[tuple(coords[filtered == 1].T)] = True
axes[2].imshow(img[0, 4 * top], cmap="gray")
cells = np.kron(background[top], np.ones((16, 16)))
axes[2].imshow(np.ma.masked_where(cells == 0, cells), cmap="cool", alpha=0.5, vmin=0, vmax=1)
for edge in range(0, img.shape[2] + 1, 16):
    axes[2].axhline(edge - 0.5, color="tab:orange", lw=0.4)
for edge in range(0, img.shape[3] + 1, 16):
    axes[2].axvline(edge - 0.5, color="tab:orange", lw=0.4)
axes[2].set_title(f"tokens at slice {4 * top}: background in magenta")
axes[3].imshow(np.concatenate(list(ct_img[:, ct_img.shape[1] // 2]), axis=1), cmap="gray")
axes[3].set_title("CT windows: brain, blood, bone")
for ax in axes:
    ax.axis("off")
fig.tight_layout()
fig.savefig(OUT / "neurovfm_preparation.png", dpi=100)
# --8<-- [end:plot]
