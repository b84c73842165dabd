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


def test_truncated_voxels_found_by_a_size_check(tmp_path: Path) -> None:
    root = write_bids_tree(tmp_path / "ds", subjects=("01",), sessions=("1",), compress=False)
    relpath = "sub-01/ses-1/anat/sub-01_ses-1_T1w.nii"
    (root / relpath).write_bytes((root / relpath).read_bytes()[:-100])
    assert load_bids(root, suffixes=["T1w"]).num_rows == 1
    with pytest.raises(BidsError, match=r"sub-01_ses-1_T1w\.nii: voxel data truncated"):
        load_bids(root, suffixes=["T1w"], check="size")
    assert load_bids(root, suffixes=["FLAIR", "bold", "dwi"], check="size").num_rows == 3


def _placeholders(root: Path) -> list[str]:
    """Replace every image with what a failed download leaves: 0 bytes, or an annex pointer."""
    relpaths = []
    for number, path in enumerate(sorted(root.rglob("*.nii.gz"))):
        if number % 2:
            path.write_text("/annex/objects/SHA256E-s1234--0123abcd.nii.gz\n")
        else:
            path.write_bytes(b"")
        relpaths.append(path.relative_to(root).as_posix())
    return relpaths


@pytest.mark.parametrize("level", ["file", "session", "subject"])
def test_nothing_readable_gives_an_empty_dataset_with_the_full_schema(
    bids_root: Path, private_copy: Path, level: str
) -> None:
    readable = load_bids(bids_root, level=level)  # type: ignore[arg-type]
    relpaths = _placeholders(private_copy)
    report = LoadReport()
    with pytest.warns(RuntimeWarning) as caught:
        ds = load_bids(private_copy, level=level, on_error="skip", report=report)  # type: ignore[arg-type]
    messages = [str(w.message) for w in caught]
    assert sum(m.startswith("skipped ") for m in messages) == 28
    assert messages[-1] == (
        f"{private_copy}: none of the 28 selected images could be read (see the skipped "
        "files); the dataset is empty"
    )
    assert isinstance(ds, Dataset)
    assert ds.num_rows == 0
    assert ds.features == readable.features
    assert ds.column_names == readable.column_names
    assert sorted(s.path for s in report.skipped) == relpaths
    reasons = {s.path: s.reason for s in report.skipped}
    assert reasons[relpaths[0]] == "cannot read the image header: file is empty (0 bytes)"
    assert reasons[relpaths[1]].startswith("cannot read the image header: not a NIfTI-1/2")
    # The same schema, so it concatenates with a readable load of the same tree.
    from datasets import concatenate_datasets

    assert concatenate_datasets([ds, readable]).num_rows == readable.num_rows


@pytest.mark.parametrize("level", ["file", "session"])
def test_nothing_readable_streams_no_rows_with_the_full_schema(
    bids_root: Path, private_copy: Path, level: str
) -> None:
    readable = load_bids(bids_root, level=level, streaming=True)  # type: ignore[arg-type]
    _placeholders(private_copy)
    ds = load_bids(private_copy, level=level, on_error="skip", streaming=True)  # type: ignore[arg-type]
    assert isinstance(ds, IterableDataset)
    assert ds.features == readable.features
    with pytest.warns(RuntimeWarning) as caught:
        assert list(ds) == []
    assert len(caught) == 28
    assert all(str(w.message).startswith("skipped ") for w in caught)


def test_nothing_readable_with_raise_stops_at_the_first_file(private_copy: Path) -> None:
    _placeholders(private_copy)
    with pytest.raises(
        BidsError, match=r"sub-01_ses-1_FLAIR\.nii\.gz: cannot read the image header: file is empty"
    ):
        load_bids(private_copy)


def test_no_image_selected_gives_an_empty_dataset_with_a_warning(bids_root: Path) -> None:
    with pytest.warns(RuntimeWarning, match="no image matches the filters"):
        ds = load_bids(bids_root, subjects=["99"])
    assert ds.num_rows == 0
    assert {"path", "subject", "image", "shape"} <= set(ds.column_names)
