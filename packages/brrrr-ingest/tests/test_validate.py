"""validate: counts against expectations (file, preset), zero-byte files, image checks
(header, size, full; the report names the one that ran), and the BIDS validator run or
skipped with the reason."""

from __future__ import annotations

import gzip
import json
import os
import stat
from pathlib import Path

import pytest

from brrrr.core.testing import write_bids_tree, write_broken_nifti
from brrrr.ingest.errors import BidsError
from brrrr.ingest.validate import PRESETS, Expectations, validate

MATCHING = {
    "subjects": 2,
    "sessions": 4,
    "modalities": {
        "T1w": {"files": 4, "sessions": 4},
        "T2w": {"files": 8, "sessions": 4},
        "lesion_mask": 4,
    },
}


@pytest.fixture
def no_validator(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))


def test_counts_and_a_matching_expect_file(
    bids_root: Path, tmp_path: Path, no_validator: None
) -> None:
    expect = tmp_path / "expect.yaml"
    expect.write_text(
        "subjects: 2\nsessions: 4\nmodalities:\n  T1w: {files: 4, sessions: 4}\n  T2w: {files: 8, sessions: 4}\n  lesion_mask: 4\n"
    )
    report = validate(bids_root, expect=expect, progress=False)
    assert report.ok, report.to_text()
    assert report.counts["modalities"]["T2w"] == {"files": 8, "sessions": 4}
    assert report.counts["images"] == 28
    assert report.counts["participants_tsv_rows"] == 2
    assert [c.name for c in report.checks] == [
        "subjects", "sessions", "T1w files", "T1w sessions", "T2w files", "T2w sessions", "lesion_mask files"
    ]  # fmt: skip
    assert report.validator.status == "skipped"
    assert "bids-validator is not on PATH" in report.validator.detail
    assert "BIDS validator: skipped: bids-validator is not on PATH" in report.to_text()


def test_json_expect_file_and_mismatches(
    bids_root: Path, tmp_path: Path, no_validator: None
) -> None:
    expect = tmp_path / "expect.json"
    expect.write_text(json.dumps({**MATCHING, "sessions": 5}))
    report = validate(bids_root, expect=expect, progress=False)
    assert not report.ok
    assert [(c.name, c.expected, c.actual) for c in report.checks if not c.ok] == [
        ("sessions", 5, 4)
    ]
    assert "FAIL sessions: expected 5, found 4" in report.to_text()


def test_the_ds004884_preset_states_the_papers_numbers(bids_root: Path, no_validator: None) -> None:
    preset = PRESETS["ds004884"]
    assert (preset.subjects, preset.sessions) == (230, 902)
    assert (preset.modalities["T1w"].files, preset.modalities["T1w"].sessions) == (447, 444)
    assert (preset.modalities["T2w"].files, preset.modalities["T2w"].sessions) == (441, 440)
    assert (preset.modalities["FLAIR"].files, preset.modalities["FLAIR"].sessions) == (235, 233)
    assert preset.modalities["lesion_mask"].files == 228
    report = validate(bids_root, expect="ds004884", headers="none", progress=False)
    assert not report.ok
    assert ("subjects", 230, 2) in [(c.name, c.expected, c.actual) for c in report.checks]


def test_zero_byte_and_unreadable_files_are_listed(private_copy: Path, no_validator: None) -> None:
    events = "sub-01/ses-1/func/sub-01_ses-1_task-naming_events.tsv"
    (private_copy / events).write_bytes(b"")
    bad = "sub-02/ses-2/anat/sub-02_ses-2_FLAIR.nii.gz"
    write_broken_nifti(private_copy / bad, "empty")
    report = validate(private_copy, progress=False)
    assert report.zero_byte == [events, bad]
    assert report.unreadable == [
        {"path": bad, "reason": "cannot read the image header: file is empty (0 bytes)"}
    ]
    assert not report.ok
    assert report.counts["images"] == 28


def test_an_empty_sidecar_is_reported_not_raised(private_copy: Path, no_validator: None) -> None:
    sidecar = "sub-01/ses-1/anat/sub-01_ses-1_T1w.json"
    (private_copy / sidecar).write_bytes(b"")
    report = validate(private_copy, progress=False)
    assert report.zero_byte == [sidecar]
    [problem] = report.problems
    assert "sub-01_ses-1_T1w.json" in problem
    assert not report.ok
    assert f"problem: {problem}" in report.to_text()


def test_a_root_without_dataset_description_is_refused(private_copy: Path) -> None:
    (private_copy / "dataset_description.json").unlink()
    with pytest.raises(BidsError, match=r"no dataset_description\.json"):
        validate(private_copy, progress=False)


def _fake_validator(folder: Path, payload: dict) -> None:
    folder.mkdir()
    script = folder / "bids-validator"
    script.write_text(f"#!/bin/sh\ncat <<'EOF'\n{json.dumps(payload)}\nEOF\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


@pytest.mark.parametrize(
    ("payload", "status", "errors"),
    [
        ({"issues": {"issues": [{"code": "X", "severity": "warning"}]}}, "passed", 0),
        ({"issues": {"issues": [{"code": "NOT_INCLUDED", "severity": "error"}]}}, "failed", 1),
        ({"issues": {"errors": [{"key": "A"}, {"key": "B"}], "warnings": []}}, "failed", 2),
    ],
)
def test_the_bids_validator_runs_when_installed(
    bids_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    payload: dict,
    status: str,
    errors: int,
) -> None:
    _fake_validator(tmp_path / "bin", payload)
    monkeypatch.setenv("PATH", str(tmp_path / "bin") + os.pathsep + os.environ["PATH"])
    report = validate(bids_root, headers="none", progress=False)
    assert (report.validator.status, report.validator.errors) == (status, errors)
    assert report.ok == (status == "passed")
    assert validate(
        bids_root, headers="none", validator="skip", progress=False
    ).validator.detail == ("disabled by the caller")


def test_invalid_expect_file(bids_root: Path, tmp_path: Path) -> None:
    expect = tmp_path / "expect.yaml"
    expect.write_text("subjects: many\n")
    with pytest.raises(BidsError, match=r"expect\.yaml: invalid expect file"):
        validate(bids_root, expect=expect)
    with pytest.raises(ValueError, match="unknown keys"):
        Expectations.from_mapping({"subject": 3})


def _truncate(path: Path) -> None:
    """Cut the last 100 bytes of voxel data; a ``.nii.gz`` stays a valid gzip stream."""
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-100]))
    else:
        path.write_bytes(path.read_bytes()[:-100])


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_voxels_pass_the_header_check_and_fail_size_and_full(
    tmp_path: Path, no_validator: None, compress: bool
) -> None:
    root = write_bids_tree(tmp_path / "ds", subjects=("01",), sessions=("1",), compress=compress)
    bad = "sub-01/ses-1/anat/sub-01_ses-1_T1w.nii" + (".gz" if compress else "")
    _truncate(root / bad)
    header = validate(root, progress=False)
    assert header.ok, header.to_text()
    assert header.check == "header"
    assert "image check: header (headers read; voxel data not checked)" in header.to_text()
    for check in ("size", "full"):
        report = validate(root, check=check, progress=False)  # type: ignore[arg-type]
        assert not report.ok
        assert report.check == check
        assert [u["path"] for u in report.unreadable] == [bad]
        reason = report.unreadable[0]["reason"]
        assert reason.startswith(
            "voxel data truncated" if check == "size" else "cannot decode the voxels"
        )
        assert report.to_dict()["check"] == check
        text = report.to_text()
        assert f"image check: {check} (" in text
        assert f"  {bad}: {reason}" in text


def test_no_image_read_says_so(bids_root: Path, no_validator: None) -> None:
    report = validate(bids_root, headers="none", progress=False)
    assert report.check == "none"
    assert "image check: none (no image read)" in report.to_text()
    with pytest.raises(ValueError, match="needs headers='all'"):
        validate(bids_root, headers="none", check="full", progress=False)
