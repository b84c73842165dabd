"""Rows at each level: entities, typed sidecar fields, events, gradients, phenotype, header
columns; multi-run order; derivatives matched by entities; failing files raised or skipped."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brrrr.core.testing import write_broken_nifti
from brrrr.ingest.errors import BidsError
from brrrr.ingest.index import index_bids
from brrrr.ingest.rows import LoadReport, bids_features, bids_schema, entity_column, iter_rows


def _rows(root: Path, level: str = "file", **kwargs: object) -> list[dict]:
    return list(iter_rows(index_bids(root), level=level, progress=False, **kwargs))  # type: ignore[arg-type]


def test_file_rows_hold_every_fact(bids_root: Path) -> None:
    rows = {row["path"]: row for row in _rows(bids_root)}
    assert len(rows) == 28
    t1 = rows["sub-01/ses-1/anat/sub-01_ses-1_T1w.nii.gz"]
    assert (t1["subject"], t1["session"], t1["datatype"], t1["suffix"]) == (
        "01",
        "1",
        "anat",
        "T1w",
    )
    assert (t1["run"], t1["task"], t1["pipeline"], t1["modality"]) == (None, None, None, "T1w")
    assert (t1["RepetitionTime"], t1["EchoTime"], t1["FlipAngle"]) == (2.25, 0.00296, 9.0)
    assert json.loads(t1["sidecar"]) == {
        "EchoTime": 0.00296,
        "FlipAngle": 9,
        "RepetitionTime": 2.25,
    }
    image = nib.load(bids_root / t1["path"])
    assert t1["shape"] == list(image.shape)
    np.testing.assert_allclose(np.reshape(t1["affine"], (4, 4)), image.affine)
    np.testing.assert_allclose(t1["spacing"], image.header.get_zooms()[:3])
    assert t1["axcodes"] == "".join(nib.aff2axcodes(image.affine))
    assert t1["dtype"] == str(image.get_data_dtype())
    assert t1["file_bytes"] == (bids_root / t1["path"]).stat().st_size
    with (bids_root / "participants.tsv").open() as handle:
        table = {r["participant_id"]: r for r in csv.DictReader(handle, delimiter="\t")}
    assert t1["phenotype"]["age"] == int(table["sub-01"]["age"])
    assert t1["phenotype"]["sex"] == table["sub-01"]["sex"]
    assert t1["phenotype"]["wab_aq"] == float(table["sub-01"]["wab_aq"])


def test_bold_rows_have_inherited_sidecar_and_events(bids_root: Path) -> None:
    bold = next(r for r in _rows(bids_root) if r["suffix"] == "bold")
    assert (bold["RepetitionTime"], bold["TaskName"], bold["task"]) == (2.0, "naming", "naming")
    events = json.loads(bold["events"])
    assert [e["trial_type"] for e in events] == ["picture", "rest", "picture"]
    assert [e["onset"] for e in events] == [0.0, 2.0, 4.0]
    assert bold["shape"] == [12, 14, 12, 4]


def test_dwi_rows_have_gradients_aligned_with_volumes(bids_root: Path) -> None:
    dwi = next(r for r in _rows(bids_root) if r["suffix"] == "dwi")
    volumes = dwi["shape"][3]
    assert dwi["bval"] == [0.0] + [1000.0] * (volumes - 1)
    assert len(dwi["bvec"]) == 3
    assert all(len(axis) == volumes for axis in dwi["bvec"])
    stem = bids_root / dwi["path"].removesuffix(".nii.gz")
    expected = np.loadtxt(f"{stem}.bvec")
    np.testing.assert_allclose(dwi["bvec"], expected)


def test_session_rows_keep_every_run_in_order_and_match_derivatives(bids_root: Path) -> None:
    rows = _rows(bids_root, "session")
    assert [(r["subject"], r["session"]) for r in rows] == [
        ("01", "1"), ("01", "2"), ("02", "1"), ("02", "2")
    ]  # fmt: skip
    row = rows[1]
    assert [Path(c["path"]).name for c in row["T2w"]] == [
        "sub-01_ses-2_run-1_T2w.nii.gz",
        "sub-01_ses-2_run-2_T2w.nii.gz",
    ]
    assert [json.loads(f["entities"])["run"] for f in row["T2w_files"]] == ["1", "2"]
    assert [f["path"] for f in row["lesion_mask_files"]] == [
        "derivatives/lesion_masks/sub-01/ses-2/anat/sub-01_ses-2_desc-lesion_mask.nii.gz"
    ]
    assert row["lesion_mask_files"][0]["pipeline"] == "lesion_masks"
    assert row["dwi_files"][0]["bval"][0] == 0.0
    assert sum(len(row[m]) for m in ("T1w", "T2w", "FLAIR", "bold", "dwi", "lesion_mask")) == 7


def test_subject_rows_list_sessions_in_order(bids_root: Path) -> None:
    rows = _rows(bids_root, "subject")
    assert [(r["subject"], r["sessions"]) for r in rows] == [("01", ["1", "2"]), ("02", ["1", "2"])]
    assert [f["session"] for f in rows[0]["T2w_files"]] == ["1", "1", "2", "2"]
    assert [json.loads(f["entities"])["run"] for f in rows[0]["T2w_files"]] == ["1", "2", "1", "2"]


@pytest.mark.parametrize("level", ["file", "session", "subject"])
def test_rows_fit_the_features(bids_root: Path, level: str) -> None:
    from datasets import Dataset

    index = index_bids(bids_root)
    features = bids_features(index, level=level)  # type: ignore[arg-type]
    rows = list(iter_rows(index, level=level, progress=False))  # type: ignore[arg-type]
    assert set(rows[0]) == set(features)
    assert Dataset.from_list(rows, features=features).num_rows == len(rows)


def _corrupt(root: Path) -> str:
    relpath = "sub-02/ses-1/anat/sub-02_ses-1_FLAIR.nii.gz"
    write_broken_nifti(root / relpath, "wrong_magic")
    return relpath


def test_a_corrupt_image_stops_the_load_naming_the_file(private_copy: Path) -> None:
    _corrupt(private_copy)
    with pytest.raises(
        BidsError, match=r"sub-02_ses-1_FLAIR\.nii\.gz: cannot read the image header"
    ):
        _rows(private_copy)


@pytest.mark.parametrize("level", ["file", "session"])
def test_a_corrupt_image_is_skipped_with_a_report_and_a_warning(
    private_copy: Path, level: str
) -> None:
    relpath = _corrupt(private_copy)
    report = LoadReport()
    with pytest.warns(RuntimeWarning, match=f"skipped {relpath}"):
        rows = _rows(private_copy, level, on_error="skip", report=report)
    assert [s.path for s in report.skipped] == [relpath]
    assert report.skipped[0].reason.startswith("cannot read the image header")
    if level == "file":
        assert len(rows) == 27
        assert relpath not in {r["path"] for r in rows}
    else:
        assert len(rows) == 4
        assert rows[2]["FLAIR"] == []


def test_a_dwi_without_matching_gradients_is_a_load_error(private_copy: Path) -> None:
    bval = private_copy / "sub-01/ses-1/dwi/sub-01_ses-1_dwi.bval"
    bval.write_text("0 1000\n")
    with pytest.raises(BidsError, match=r"2 b-values for 5 volumes"):
        _rows(private_copy)


# Files with every entity of the issue, raw and derivative, named as BIDS spells the keys.
_ENTITY_SCANS = (
    ("anat", {"mod": "MP2RAGE"}, "defacemask"),
    ("anat", {"acq": "mprage", "ce": "gad", "rec": "norm", "run": "2"}, "T1w"),
    ("anat", {"echo": "1", "flip": "2", "inv": "1", "mt": "on", "part": "mag"}, "MPM"),
    ("fmap", {"dir": "AP"}, "epi"),
    ("func", {"task": "rest", "recording": "resp", "space": "orig"}, "bold"),
)
_DERIVATIVES = (
    "sub-1_space-MNI152NLin6Asym_res-2_den-91k_label-GM_desc-brain_probseg.nii.gz",
    "sub-1_mod-T1w_hemi-L_desc-preproc_mask.nii.gz",
)


def _entity_tree(root: Path) -> Path:
    from brrrr.core.testing import BidsScan, write_bids_tree, write_nifti

    scans = [BidsScan(datatype, suffix, entities) for datatype, entities, suffix in _ENTITY_SCANS]
    write_bids_tree(root, subjects=("1",), sessions=(), scans=scans, lesion_masks=False)
    pipeline = root / "derivatives" / "prep"
    pipeline.mkdir(parents=True)
    (pipeline / "dataset_description.json").write_text(
        json.dumps(
            {
                "Name": "prep",
                "BIDSVersion": "1.9.0",
                "DatasetType": "derivative",
                "GeneratedBy": [{"Name": "prep"}],
            }
        )
    )
    (pipeline / "sub-1" / "anat").mkdir(parents=True)
    for name in _DERIVATIVES:
        write_nifti(pipeline / "sub-1" / "anat" / name, shape=(4, 5, 6))
    return root


def test_every_entity_pybids_parses_keeps_its_own_column(tmp_path: Path) -> None:
    from bids import BIDSLayout

    root = _entity_tree(tmp_path / "ds")
    index = index_bids(root)
    rows = {row["path"]: row for row in iter_rows(index, progress=False)}
    assert len(rows) == len(_ENTITY_SCANS) + len(_DERIVATIVES)
    layout = BIDSLayout(root, derivatives=True, validate=False)
    found = layout.get(scope="all", extension=[".nii", ".nii.gz"])
    assert len(found) == len(rows)
    entity_columns = {entity_column(name) for name in index.entity_names}
    for image in found:
        row = rows[Path(image.path).relative_to(root).as_posix()]
        expected = {
            entity_column(k): str(v)
            for k, v in image.get_entities(metadata=False).items()
            if k != "extension"
        }
        # Each entity pybids parsed is in its column; every other entity column is empty.
        assert {c: row[c] for c in entity_columns if row[c] is not None} == expected, image.path
    defacemask = rows["sub-1/anat/sub-1_mod-MP2RAGE_defacemask.nii.gz"]
    assert (defacemask["mod"], defacemask["modality"], defacemask["suffix"]) == (
        "MP2RAGE", "defacemask", "defacemask"
    )  # fmt: skip
    probseg = rows["derivatives/prep/" + "sub-1/anat/" + _DERIVATIVES[0]]
    assert (probseg["res"], probseg["den"], probseg["label"], probseg["desc"]) == (
        "2", "91k", "GM", "brain"
    )  # fmt: skip
    assert (probseg["space"], probseg["modality"], probseg["pipeline"]) == (
        "MNI152NLin6Asym", "brain_probseg", "prep"
    )  # fmt: skip
    mask = rows["derivatives/prep/sub-1/anat/" + _DERIVATIVES[1]]
    assert (mask["mod"], mask["hemi"], mask["modality"]) == ("T1w", "L", "preproc_mask")
    # Session rows keep pybids' own entity names in their JSON, ready for BIDSLayout.get.
    [session] = iter_rows(index, level="session", progress=False)
    [files] = session["defacemask_files"]
    assert json.loads(files["entities"])["modality"] == "MP2RAGE"


def test_no_entity_of_pybids_collides_with_another_column() -> None:
    from importlib.resources import files

    from brrrr.ingest.index import BidsIndex

    config = files("bids.layout") / "config"
    names = [
        entity["name"]
        for part in ("bids.json", "derivatives.json")
        for entity in json.loads((config / part).read_text())["entities"]
        if entity["name"] != "extension"
    ]

    def index(entity_names: tuple[str, ...]) -> BidsIndex:
        return BidsIndex(Path("."), {}, [], entity_names, (), {}, {})

    others = set(bids_schema(index(())))
    columns = [entity_column(name) for name in names]
    assert len(set(columns)) == len(names)
    assert not set(columns) & others
    assert len(bids_schema(index(tuple(names)))) == len(others) + len(names)
    assert entity_column("modality") == "mod"
