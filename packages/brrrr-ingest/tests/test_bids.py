"""load_bids: a Dataset or IterableDataset whose Nifti cells decode to the source voxels."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from datasets import Dataset, IterableDataset, Nifti

from brrrr.core.testing import write_bids_tree, write_broken_nifti
from brrrr.ingest import load_bids
from brrrr.ingest.errors import BidsError
from brrrr.ingest.rows import LoadReport


def test_dataset_decodes_the_source_voxels(bids_root: Path) -> None:
    ds = load_bids(bids_root)
    assert isinstance(ds, Dataset)
    assert ds.num_rows == 28
    assert isinstance(ds.features["image"], Nifti)
    row = ds[3]
    source = nib.load(bids_root / row["path"])
    np.testing.assert_array_equal(np.asarray(row["image"].dataobj), np.asarray(source.dataobj))


def test_filtering_on_header_columns_decodes_nothing(bids_root: Path) -> None:
    ds = load_bids(bids_root)
    four_d = ds.filter(lambda shape: len(shape) == 4, input_columns="shape")
    assert sorted(set(four_d["suffix"])) == ["bold", "dwi"]


def test_streaming_gives_the_same_rows(bids_root: Path) -> None:
    eager = load_bids(bids_root, level="session", suffixes=["T2w", "lesion_mask"])
    lazy = load_bids(bids_root, level="session", suffixes=["T2w", "lesion_mask"], streaming=True)
    assert isinstance(lazy, IterableDataset)
    streamed = list(lazy.remove_columns(["T2w", "lesion_mask"]))
    assert streamed == list(eager.remove_columns(["T2w", "lesion_mask"]))


def test_uncompressed_nii_is_read(tmp_path: Path) -> None:
    root = write_bids_tree(tmp_path / "ds", subjects=("01",), sessions=("1",), compress=False)
    ds = load_bids(root, suffixes=["T1w"])
    assert ds["path"] == ["sub-01/ses-1/anat/sub-01_ses-1_T1w.nii"]
    voxels = np.asarray(ds[0]["image"].dataobj)
    np.testing.assert_array_equal(voxels, np.asarray(nib.load(root / ds[0]["path"]).dataobj))


def test_corrupt_data_found_only_by_a_full_check(private_copy: Path) -> None:
    relpath = "sub-01/ses-1/anat/sub-01_ses-1_T1w.nii.gz"
    write_broken_nifti(private_copy / relpath, "corrupt_gzip")
    assert load_bids(private_copy, suffixes=["T1w"]).num_rows == 4
    with pytest.raises(BidsError, match=r"sub-01_ses-1_T1w\.nii\.gz: cannot decode the voxels"):
        load_bids(private_copy, suffixes=["T1w"], check="full")
    report = LoadReport()
    with pytest.warns(RuntimeWarning, match="skipped"):
        ds = load_bids(private_copy, suffixes=["T1w"], check="full", on_error="skip", report=report)
    assert ds.num_rows == 3
    assert [s.path for s in report.skipped] == [relpath]
