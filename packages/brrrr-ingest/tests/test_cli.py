"""`brrrr bids …` through core's app: to-hf, push, verify, validate; errors as one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brrrr.core.cli import build_app, main
from brrrr.core.testing import write_broken_nifti

runner = CliRunner()


def _run(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(build_app(), ["bids", *args])


def test_bids_commands_are_registered() -> None:
    result = _run("--help")
    assert result.exit_code == 0
    for name in ("sample", "to-hf", "push", "verify", "validate"):
        assert name in result.output


def test_to_hf_then_verify(private_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _run(
        "to-hf", str(private_copy), str(out), "--level", "session", "--shard-size", "60KB"
    )
    assert result.exit_code == 0, result.output
    assert "4 rows in" in result.output
    assert "0 kept from an earlier run" in result.output
    again = _run("to-hf", str(private_copy), str(out), "--level", "session", "--shard-size", "60KB")
    assert "0 written" in again.output
    verified = _run("verify", str(out), "--sample", "3")
    assert verified.exit_code == 0
    assert verified.output.strip().endswith("OK")
    (private_copy / "sub-01/ses-1/anat/sub-01_ses-1_FLAIR.nii.gz").write_bytes(b"changed")
    failed = _run("verify", str(out), "--json")
    assert failed.exit_code == 1
    assert json.loads(failed.stdout)["problems"] == [
        "sub-01/ses-1/anat/sub-01_ses-1_FLAIR.nii.gz: the source file differs from the embedded bytes"
    ]


def test_to_hf_skips_and_lists_a_corrupt_file(private_copy: Path, tmp_path: Path) -> None:
    write_broken_nifti(private_copy / "sub-01/ses-2/anat/sub-01_ses-2_T1w.nii.gz", "not_an_image")
    stopped = _run("to-hf", str(private_copy), str(tmp_path / "a"))
    assert stopped.exit_code == 1
    assert "sub-01_ses-2_T1w.nii.gz" in str(stopped.exception)
    with pytest.warns(RuntimeWarning, match="skipped sub-01/ses-2/anat/sub-01_ses-2_T1w.nii.gz"):
        skipped = _run(
            "to-hf", str(private_copy), str(tmp_path / "b"), "--on-error", "skip", "--suffix", "T1w"
        )
    assert skipped.exit_code == 0, skipped.output
    assert "skipped 1 files that failed to load" in skipped.stderr
    assert "3 rows in 1 shards" in skipped.stdout


def test_push_to_a_local_folder(bids_root: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    result = _run(
        "push",
        str(bids_root),
        f"file://{dest}",
        "--work-dir",
        str(tmp_path / "work"),
        "--suffix",
        "T1w",
    )
    assert result.exit_code == 0, result.output
    assert (dest / "README.md").is_file()
    assert (dest / "manifest.json").is_file()
    assert _run("verify", str(dest)).exit_code == 0


def test_validate_exit_codes(
    bids_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    expect = tmp_path / "expect.json"
    expect.write_text(
        json.dumps({"subjects": 2, "sessions": 4, "modalities": {"FLAIR": {"files": 4}}})
    )
    ok = _run("validate", str(bids_root), "--expect", str(expect))
    assert ok.exit_code == 0, ok.output
    assert "result: OK" in ok.output
    assert "BIDS validator: skipped" in ok.output
    paper = _run("validate", str(bids_root), "--expect", "ds004884", "--headers", "none", "--json")
    assert paper.exit_code == 1
    assert json.loads(paper.stdout)["checks"][0] == {
        "name": "subjects", "expected": 230, "actual": 2, "ok": False
    }  # fmt: skip


def test_errors_are_one_line_naming_the_root(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["bids", "to-hf", str(tmp_path), str(tmp_path / "out")])
    assert caught.value.code == 1
    # Only the last line: warnings about other packages' commands not yet installed may precede it.
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"brrrr: error: {tmp_path}: not a BIDS dataset: there is no dataset_description.json "
        "at its root (BIDS requires one, with at least Name and BIDSVersion)"
    )


def test_validate_check_size_and_full_name_a_truncated_image(
    private_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gzip

    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    bad = "sub-02/ses-1/anat/sub-02_ses-1_FLAIR.nii.gz"
    content = gzip.decompress((private_copy / bad).read_bytes())
    (private_copy / bad).write_bytes(gzip.compress(content[:-100]))
    header = _run("validate", str(private_copy))
    assert header.exit_code == 0, header.output
    assert "image check: header (headers read; voxel data not checked)" in header.output
    for check in ("size", "full"):
        found = _run("validate", str(private_copy), "--check", check, "--json")
        assert found.exit_code == 1, found.output
        report = json.loads(found.stdout)
        assert (report["check"], report["ok"]) == (check, False)
        assert [u["path"] for u in report["unreadable"]] == [bad]
    text = _run("validate", str(private_copy), "--check", "size")
    assert "image check: size (headers read, and every voxel byte" in text.output
    assert f"  {bad}: voxel data truncated" in text.output
    refused = _run("validate", str(private_copy), "--headers", "none", "--check", "full")
    assert refused.exit_code == 2
    assert "needs --headers all" in refused.output


def test_sample_writes_a_tree_that_validates_and_converts(tmp_path: Path) -> None:
    root = tmp_path / "bids"
    result = _run("sample", str(root), "--subjects", "1", "--sessions", "1")
    assert result.exit_code == 0, result.output
    assert (root / "dataset_description.json").exists()
    assert sorted(p.name for p in root.iterdir() if p.name.startswith("sub-")) == ["sub-01"]
    result = _run("to-hf", str(root), str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert _run("verify", str(tmp_path / "out")).exit_code == 0
    again = _run("sample", str(root))
    assert again.exit_code != 0
    assert "not an empty folder" in again.output
