"""The dataset card: YAML metadata the Hub reads, counts, schema, citation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from brrrr.ingest.card import license_id


def _split(card: str) -> tuple[dict, str]:
    _, header, body = card.split("---\n", 2)
    return yaml.safe_load(header), body


def test_card_has_hub_metadata_counts_schema_and_citation(converted: Path) -> None:
    meta, body = _split((converted / "README.md").read_text())
    assert meta["license"] == "cc0-1.0"
    assert meta["pretty_name"] == "brrrr synthetic dataset"
    assert meta["configs"][0]["data_files"][0] == {"split": "train", "path": "data/train-*.parquet"}
    assert "2 subjects, 4 sessions, 28 images, 28 rows" in body
    assert "| T2w | 8 | 4 |" in body
    assert "| lesion_mask | 4 | 4 |" in body
    assert "| sub-01 | 2 | 14 |" in body
    assert "| `image` | Nifti (image bytes) |" in body
    assert "| `affine` | list<float64> |" in body
    assert "doi = {10.0000/brrrr.synthetic}" in body
    assert "Cite the brrrr test suite." in body
    assert 'load_dataset("parquet", data_files="data/*.parquet"' in body


@pytest.mark.parametrize(
    ("bids", "hub"),
    [
        ("CC0", "cc0-1.0"),
        ("CC BY 4.0", "cc-by-4.0"),
        ("PDDL", "pddl"),
        ("", "unknown"),
        ("Mine", "other"),
    ],
)
def test_license_id(bids: str, hub: str) -> None:
    assert license_id(bids) == hub
