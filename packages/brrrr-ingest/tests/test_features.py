"""Plain-data features: the same dict, Arrow schema and metadata as ``datasets`` itself gives,
so that shards written without importing ``datasets`` load back as ``Nifti`` columns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import Features, List, Nifti, Value

from brrrr.ingest.features import NIFTI, arrow_schema, arrow_type, image_columns, list_of, value
from brrrr.ingest.index import index_bids
from brrrr.ingest.rows import bids_schema


@pytest.mark.parametrize("level", ["file", "session", "subject"])
def test_bids_schema_is_what_datasets_writes(bids_root: Path, level: str) -> None:
    plain = bids_schema(index_bids(bids_root), level=level)  # type: ignore[arg-type]
    features = Features.from_dict(plain)
    # Same text, key order included: shards' metadata and resume fingerprints are built from it.
    assert json.dumps(features.to_dict()) == json.dumps(plain)
    ours = arrow_schema(plain)
    assert ours.equals(features.arrow_schema, check_metadata=True)
    assert ours.metadata == features.arrow_schema.metadata


def test_helpers_match_the_datasets_types() -> None:
    built = {
        "name": value("string"),
        "size": value("int64"),
        "image": NIFTI,
        "runs": list_of(NIFTI),
        "affine": list_of(value("float64"), length=16),
        "grid": list_of(list_of(value("float32"))),
        "phenotype": {"age": value("int64"), "group": value("string")},
    }
    reference = Features(
        {
            "name": Value("string"),
            "size": Value("int64"),
            "image": Nifti(),
            "runs": List(Nifti()),
            "affine": List(Value("float64"), length=16),
            "grid": List(List(Value("float32"))),
            "phenotype": {"age": Value("int64"), "group": Value("string")},
        }
    )
    assert json.dumps(reference.to_dict()) == json.dumps(built)
    assert arrow_schema(built).equals(reference.arrow_schema, check_metadata=True)
    assert image_columns(built) == {"image": False, "runs": True}


def test_an_unknown_feature_is_refused() -> None:
    with pytest.raises(ValueError, match="no Arrow type"):
        arrow_type({"_type": "Audio"})
