"""Shared inputs: one small BIDS tree and one conversion of it, written once per session.

The tree: subjects 01 and 02, sessions 1 and 2, each with T1w, T2w run-1 and run-2,
FLAIR, bold (with events) and dwi (with bval/bvec), plus a lesion mask per
session under ``derivatives/lesion_masks``: 28 images. Tests that damage a
dataset use ``private_copy``; the shared ones stay intact.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from brrrr.core.testing import write_bids_tree


@pytest.fixture(scope="session")
def bids_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bids_tree(
        tmp_path_factory.mktemp("bids") / "ds", subjects=("01", "02"), sessions=("1", "2")
    )


@pytest.fixture
def private_copy(bids_root: Path, tmp_path: Path) -> Path:
    """A copy of ``bids_root`` that the test may damage."""
    return Path(shutil.copytree(bids_root, tmp_path / "ds"))


@pytest.fixture(scope="session")
def converted(bids_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``to_hf`` output of ``bids_root`` at file level, in several shards and row groups."""
    from brrrr.ingest.shards import to_hf

    out = tmp_path_factory.mktemp("converted") / "out"
    to_hf(bids_root, out, shard_bytes="40KB", row_group_bytes="10KB", progress=False)
    return out
