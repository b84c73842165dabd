"""The Dataset explorer's plain functions on the built-in sample (real BIDS, real Parquet)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from brrrr.demos.apps import explorer
from brrrr.demos.errors import ExplorerError


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sample")
    explorer.prepare(root)
    return {"hf": root / "explorer" / "bids-hf", "bids": root / "explorer" / "bids"}


def test_prepare_is_idempotent(sample: dict[str, Path]) -> None:
    shard = next((sample["hf"] / "data").glob("*.parquet"))
    before = shard.stat().st_mtime_ns
    explorer.prepare(sample["hf"].parents[1])
    assert shard.stat().st_mtime_ns == before
    assert not [p for p in sample["hf"].parents[1].iterdir() if p.name.startswith(".explorer")]


@pytest.mark.parametrize("kind", ["hf", "bids"])
def test_open_filter_show(sample: dict[str, Path], kind: str) -> None:
    summary, choices, spacing, frame = explorer.open_folder(sample[kind])
    assert len(frame) == 15
    assert "15 images of 3 subjects" in summary
    assert choices["axcodes"] == ["LAS", "RAS"]
    assert spacing == (4.0, 5.0)
    count, rows = explorer.filter_folder(
        sample[kind], entities={"suffix": ["T1w"]}, axcodes=["LAS"]
    )
    assert count == "2 of 15 rows match"  # sub-02 is stored radiologically
    _, rows = explorer.filter_folder(sample[kind], spacing_max_mm=4.0)
    assert set(rows["modality"]) == {"T1w", "lesion_mask"}
    html, sidecar, header, _caption = explorer.show_row(sample[kind], rows["path"][0])
    assert html.startswith("<iframe")
    assert "Manufacturer" in sidecar
    assert header["nifti"]["sizeof_hdr"] == 348
    assert header["columns"]["shape"]


def test_filter_never_reads_the_images(sample: dict[str, Path], tmp_path: Path) -> None:
    shard = next((sample["hf"] / "data").glob("*.parquet"))
    table = pq.read_table(shard)
    broken = table.column("image").combine_chunks()
    garbage = pa.StructArray.from_arrays(
        [pa.array([b"not a nifti"] * len(table), pa.binary()), broken.field("path")],
        names=["bytes", "path"],
    )
    out = tmp_path / "broken" / "data"
    out.mkdir(parents=True)
    index = table.column_names.index("image")
    pq.write_table(table.set_column(index, "image", garbage), out / shard.name)
    count, rows = explorer.filter_folder(out.parent, entities={"subject": ["02"]})
    assert count == "6 of 15 rows match"
    with pytest.raises(ExplorerError, match="cannot decode the image of the row"):
        explorer.show_row(out.parent, rows["path"][0])


def test_a_folder_that_is_neither_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ExplorerError, match="neither a BIDS dataset"):
        explorer.open_folder(tmp_path)
    with pytest.raises(ExplorerError, match="no such folder"):
        explorer.open_folder(tmp_path / "missing")
