"""index_bids: pybids finds images, sidecars after inheritance, events, gradients, derivatives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from brrrr.ingest.errors import BidsError
from brrrr.ingest.index import index_bids


def test_finds_every_image_in_a_stable_order(bids_root: Path) -> None:
    index = index_bids(bids_root)
    assert len(index.items) == 28
    assert index.entity_names[:4] == ("subject", "session", "datatype", "suffix")
    assert {"task", "run", "desc"} <= set(index.entity_names)
    assert set(index.modalities) == {"T1w", "T2w", "FLAIR", "bold", "dwi", "lesion_mask"}
    first_session = [it.relpath for it in index.items[:7]]
    assert first_session[0].startswith("sub-01/ses-1/")
    runs = [it.entities.get("run") for it in index.items if it.modality == "T2w"][:2]
    assert runs == ["1", "2"]
    assert index.items[6].relpath == (
        "derivatives/lesion_masks/sub-01/ses-1/anat/sub-01_ses-1_desc-lesion_mask.nii.gz"
    )
    assert index.description["License"] == "CC0"


def test_sidecar_inheritance_events_and_gradients(bids_root: Path) -> None:
    items = {it.modality: it for it in index_bids(bids_root, subjects=["01"], sessions=["1"]).items}
    bold = items["bold"]
    # RepetitionTime and TaskName come from the top-level task-naming_bold.json.
    assert bold.sidecar == {"EchoTime": 0.03, "RepetitionTime": 2.0, "TaskName": "naming"}
    assert bold.events_path is not None
    assert bold.events_path.endswith("sub-01_ses-1_task-naming_events.tsv")
    dwi = items["dwi"]
    assert dwi.bval_path is not None
    assert dwi.bval_path.endswith("sub-01_ses-1_dwi.bval")
    assert dwi.bvec_path is not None
    assert dwi.bvec_path.endswith("sub-01_ses-1_dwi.bvec")
    assert items["T1w"].events_path is None
    mask = items["lesion_mask"]
    assert mask.pipeline == "lesion_masks"
    assert mask.entities["desc"] == "lesion"


def test_filters(bids_root: Path) -> None:
    index = index_bids(bids_root, subjects=["sub-02"], suffixes=["T1w", "lesion_mask"])
    assert [it.modality for it in index.items] == ["T1w", "lesion_mask"] * 2
    assert {it.entities["subject"] for it in index.items} == {"02"}
    assert index_bids(bids_root, datatypes=["dwi"]).modalities == ("dwi",)
    assert index_bids(bids_root, include_derivatives=False).items[-1].pipeline is None


def test_phenotype_is_typed(bids_root: Path) -> None:
    index = index_bids(bids_root)
    assert index.phenotype_types == {"age": "int64", "sex": "string", "wab_aq": "float64"}
    assert set(index.phenotype) == {"01", "02"}


def test_root_without_dataset_description_is_refused(private_copy: Path) -> None:
    (private_copy / "dataset_description.json").unlink()
    with pytest.raises(BidsError, match=r"no dataset_description\.json") as caught:
        index_bids(private_copy)
    assert str(private_copy) in str(caught.value)


def test_missing_root_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BidsError, match="not a folder"):
        index_bids(tmp_path / "nowhere")


def test_derivative_without_description_is_indexed_with_a_warning(private_copy: Path) -> None:
    (private_copy / "derivatives" / "lesion_masks" / "dataset_description.json").unlink()
    with pytest.warns(RuntimeWarning, match="lesion_masks: derivative pipeline without"):
        index = index_bids(private_copy)
    masks = [it for it in index.items if it.pipeline == "lesion_masks"]
    assert len(masks) == 4
    assert {it.modality for it in masks} == {"lesion_mask"}
    assert len(index_bids(private_copy, include_derivatives=False).items) == 24


def test_inherited_files_agree_with_pybids_get_nearest(private_copy: Path) -> None:
    from bids import BIDSLayout

    (private_copy / "sub-02/ses-1/func/sub-02_ses-1_task-naming_events.tsv").unlink()
    (private_copy / "task-naming_events.tsv").write_text("onset\tduration\n0\t1\n")
    items = index_bids(private_copy).items
    layout = BIDSLayout(private_copy, validate=False)
    strict = {"strict": True, "ignore_strict_entities": ["extension", "suffix"]}
    checked = 0
    for item in items:
        if item.modality == "bold":
            expected = layout.get_nearest(item.path, suffix="events", extension=".tsv", **strict)
            assert item.events_path == expected
            checked += 1
        if item.modality == "dwi":
            assert item.bval_path == layout.get_nearest(item.path, extension=".bval", **strict)
            assert item.bvec_path == layout.get_nearest(item.path, extension=".bvec", **strict)
    assert checked == 4
    inherited = next(it for it in items if it.relpath.startswith("sub-02/ses-1/func/"))
    assert inherited.events_path == str(private_copy / "task-naming_events.tsv")


def test_sidecars_agree_with_pybids_metadata_index(private_copy: Path) -> None:
    from bids import BIDSLayout

    def write(relpath: str, payload: dict[str, object]) -> None:
        (private_copy / relpath).write_text(json.dumps(payload))

    # Inheritance over four levels, a null (which hides the inherited value, as in pybids),
    # a sidecar that applies to one run only, a derivative sidecar, and a raw one that must not reach the derivatives.
    write("T1w.json", {"MagneticFieldStrength": 3, "Manufacturer": "A", "SliceThickness": 1})
    write("sub-02/sub-02_T1w.json", {"Manufacturer": "B", "FlipAngle": 8})
    write("sub-02/ses-1/anat/sub-02_ses-1_T1w.json", {"FlipAngle": 9, "SliceThickness": None})
    write("sub-01/ses-2/anat/sub-01_ses-2_run-2_T2w.json", {"EchoTime": 0.1, "Tags": [1, 2]})
    write("sub-01/ses-2/anat/sub-01_ses-2_T2w.json", {"EchoTime": 0.09, "Nested": {"a": 1}})
    write("derivatives/lesion_masks/desc-lesion_mask.json", {"Description": "manual"})
    write("mask.json", {"RawOnly": True})
    items = index_bids(private_copy).items
    layout = BIDSLayout(private_copy, derivatives=True, validate=False)
    for item in items:
        assert item.sidecar == layout.get_metadata(item.path), item.relpath
    by_path = {it.relpath: it.sidecar for it in items}
    assert by_path["sub-02/ses-1/anat/sub-02_ses-1_T1w.nii.gz"] == {
        "MagneticFieldStrength": 3,
        "Manufacturer": "B",
        "FlipAngle": 9,
    }
    assert by_path["sub-01/ses-2/anat/sub-01_ses-2_run-2_T2w.nii.gz"]["EchoTime"] == 0.1
    mask = "derivatives/lesion_masks/sub-01/ses-1/anat/sub-01_ses-1_desc-lesion_mask.nii.gz"
    assert by_path[mask] == {"Description": "manual"}


def test_an_unreadable_sidecar_is_reported(private_copy: Path) -> None:
    (private_copy / "T1w.json").write_text("{not json")
    with pytest.raises(BidsError, match="cannot read the sidecar") as caught:
        index_bids(private_copy)
    assert "T1w.json" in str(caught.value)
