"""A BIDS dataset as a NeuroVFM dataset root: ``layout_from_bids`` and ``brrrr preprocess
from-bids``, then the cache built from it (``brrrr preprocess cache --json``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from brrrr.core.cli import build_app
from brrrr.core.errors import BrrrrError
from brrrr.core.testing import write_bids_tree
from brrrr.preprocess.errors import MetadataError
from brrrr.preprocess.neurovfm.bids_layout import bids_study_images, layout_from_bids
from brrrr.preprocess.neurovfm.cache import CacheManager
from brrrr.preprocess.neurovfm.settings import PrepareSettings

runner = CliRunner()


@pytest.fixture
def bids(tmp_path: Path) -> Path:
    return write_bids_tree(tmp_path / "bids", subjects=["01", "02"], sessions=["1", "2"])


def test_a_study_per_session_and_an_image_per_file(bids: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    written = layout_from_bids(bids, root)
    studies = sorted(p.name for p in (root / "raw").iterdir())
    assert studies == ["sub-01_ses-1", "sub-01_ses-2", "sub-02_ses-1", "sub-02_ses-2"]
    names = sorted(p.name for p in (root / "raw" / "sub-01_ses-2").iterdir())
    assert names == ["FLAIR.nii.gz", "T1w.nii.gz", "run-1_T2w.nii.gz", "run-2_T2w.nii.gz"]
    assert len(written) == 16
    # Only raw anat data: no derivatives (lesion masks), sidecars, dwi or func.
    assert not any("lesion" in p.name or p.suffix == ".json" for p in written)
    source = bids / "sub-01" / "ses-2" / "anat" / "sub-01_ses-2_T1w.nii.gz"
    copied = root / "raw" / "sub-01_ses-2" / "T1w.nii.gz"
    assert copied.read_bytes() == source.read_bytes()
    assert not list(root.rglob(".*.partial"))


def test_datatypes_and_a_dataset_without_sessions(tmp_path: Path) -> None:
    bids = write_bids_tree(tmp_path / "bids", subjects=["a"], sessions=[])
    images = bids_study_images(bids, datatypes=("anat", "dwi"))
    assert list(images) == ["sub-a"]
    assert "dwi.nii.gz" in images["sub-a"]
    assert "T1w.nii.gz" in images["sub-a"]


@pytest.mark.parametrize("link", ["hardlink", "symlink"])
def test_links_instead_of_copies(bids: Path, tmp_path: Path, link: str) -> None:
    written = layout_from_bids(bids, tmp_path / link, link=link)  # type: ignore[arg-type]
    target = next(p for p in written if p.name == "T1w.nii.gz")
    source = bids / "sub-01" / "ses-1" / "anat" / "sub-01_ses-1_T1w.nii.gz"
    if link == "symlink":
        assert target.is_symlink()
        assert target.resolve() == source.resolve()
    else:
        assert os.path.samefile(target, source)


def test_bad_inputs_are_named(bids: Path, tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match=r"no dataset_description\.json") as info:
        layout_from_bids(tmp_path, tmp_path / "x")
    assert info.value.path == str(tmp_path)

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "dataset_description.json").write_text("{}")
    with pytest.raises(MetadataError, match="without sub-"):
        layout_from_bids(empty, tmp_path / "y")
    (empty / "sub-01" / "anat").mkdir(parents=True)
    with pytest.raises(MetadataError, match=r"no .* images"):
        layout_from_bids(empty, tmp_path / "y")

    stray = bids / "sub-01" / "ses-1" / "anat" / "T1w_copy.nii.gz"
    stray.write_bytes(b"")
    with pytest.raises(MetadataError, match="must start with 'sub-01_ses-1_'") as info:
        bids_study_images(bids)
    assert info.value.path == str(stray)
    stray.unlink()

    root = tmp_path / "root"
    layout_from_bids(bids, root)
    with pytest.raises(MetadataError, match="already holds a raw/ folder"):
        layout_from_bids(bids, root)
    (root / "raw" / "old-study").mkdir()
    layout_from_bids(bids, root, overwrite=True)
    assert not (root / "raw" / "old-study").exists()
    with pytest.raises(MetadataError, match="link must be"):
        layout_from_bids(bids, tmp_path / "z", link="move")  # type: ignore[arg-type]


def test_from_bids_then_cache_on_the_command_line(bids: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    laid = runner.invoke(build_app(), ["preprocess", "from-bids", str(bids), str(root)])
    assert laid.exit_code == 0, laid.output
    assert "laid out 16 images of 4 studies" in laid.output
    args = [
        "preprocess",
        "cache",
        str(root),
        "--in-plane-mm",
        "2",
        "--json",
        str(tmp_path / "m" / "c.json"),  # a folder yet to be made
    ]
    built = runner.invoke(build_app(), args)
    assert built.exit_code == 0, built.output
    summary = json.loads((tmp_path / "m" / "c.json").read_text())
    assert summary["images"] == summary["cached"] == 16
    cache = CacheManager(root, settings=PrepareSettings(in_plane_mm=2.0))
    assert summary["tokens"] == sum(cache.token_counts().values()) > 0
    cached = cache.load_image("sub-02_ses-1", "T1w", window="mri")
    assert cached.data.dtype == np.uint8
    spacing = np.linalg.norm(cached.view.affine[:3, :3], axis=0)
    assert spacing.tolist() == pytest.approx([4.0, 2.0, 2.0])  # through-plane, in-plane

    again = runner.invoke(build_app(), ["preprocess", "from-bids", str(bids), str(root)])
    assert again.exit_code != 0
    assert isinstance(again.exception, BrrrrError)
    bad = runner.invoke(
        build_app(), ["preprocess", "from-bids", str(bids), str(root), "--link", "x"]
    )
    assert bad.exit_code == 2
