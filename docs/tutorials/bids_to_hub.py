# ruff: noqa: E402  (a tutorial imports each tool in the cell that first uses it)
"""Tutorial: a BIDS dataset → Parquet shards with ``datasets.Nifti`` → the Hugging Face Hub.

Runs offline on a small synthetic BIDS tree and writes its figure to the output folder:

    python docs/tutorials/bids_to_hub.py [OUT]      # or BRRRR_TUTORIAL_OUT=OUT
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

# %% A BIDS dataset
# --8<-- [start:bids]
from brrrr.core.testing import write_bids_tree

# Two subjects, two sessions: T1w, two T2w runs, FLAIR, BOLD with events, DWI with
# bval/bvec, participants.tsv and lesion masks under derivatives/.
root = write_bids_tree(OUT / "bids", shape=(24, 28, 24), spacing_mm=8.0)
print(sorted(p.name for p in (root / "sub-01" / "ses-1" / "anat").iterdir()))
# --8<-- [end:bids]

# %% Parquet shards, a manifest and a dataset card
# --8<-- [start:convert]
from brrrr.ingest import to_hf, verify

result = to_hf(root, OUT / "hf", level="file", shard_bytes="200kB", progress=False)
print(f"{len(result.manifest.shards)} shards written to {result.out}")
card = (OUT / "hf" / "README.md").read_text()
print(next(line for line in card.splitlines() if line.startswith("# ")))  # the dataset card

report = verify(OUT / "hf", progress=False)  # shard hashes and embedded bytes vs the source
print("verify:", "ok" if report.ok else report.problems)
# --8<-- [end:convert]

# %% Read it back with datasets
# --8<-- [start:load]
import datasets
from datasets import load_dataset

datasets.disable_progress_bars()

ds = load_dataset("parquet", data_files=str(OUT / "hf" / "data" / "*.parquet"), split="train")
print(ds)
# Header facts are columns: filtering on them decodes no image.
anat = ds.filter(lambda suffix: suffix in {"T1w", "T2w", "FLAIR"}, input_columns="suffix")
t1 = anat.filter(
    lambda suffix, spacing: suffix == "T1w" and max(spacing) <= 8.0,
    input_columns=["suffix", "spacing"],
)
print(
    f"{len(ds)} files, {len(anat)} anatomical, {len(t1)} T1w; shapes {set(map(tuple, t1['shape']))}"
)

# The image column is datasets.Nifti: decoding gives a nibabel image with the source's voxels.
first = t1[0]
voxels = np.asarray(first["image"].get_fdata())
assert voxels.shape == tuple(first["shape"])
# --8<-- [end:load]

# %% Plot
# --8<-- [start:plot]
counts = {}
for suffix in ds["suffix"]:
    counts[suffix] = counts.get(suffix, 0) + 1
fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
left.bar(list(counts), list(counts.values()), color="tab:blue")
left.set_title("rows per suffix (from the Parquet columns)")
left.tick_params(axis="x", rotation=45)
right.imshow(np.rot90(voxels[:, :, voxels.shape[2] // 2]), cmap="gray")
right.set_title(f"sub-{first['subject']} ses-{first['session']} T1w, decoded")
right.axis("off")
fig.tight_layout()
fig.savefig(OUT / "bids_to_hub.png", dpi=100)
# --8<-- [end:plot]

# %% To the Hub
# --8<-- [start:push]
from brrrr.ingest import push

# A Hub repo id ("me/my-dataset") needs a network and a token (`huggingface-cli login`);
# a file:// target writes the same files, so this runs offline.
pushed = push(root, f"file://{OUT / 'hub-mirror'}", work_dir=OUT / "push-work", progress=False)
print(f"pushed shards {pushed.uploaded} to {pushed.destination}")
# push(root, "me/my-dataset", level="session")   # the real thing
# --8<-- [end:push]
