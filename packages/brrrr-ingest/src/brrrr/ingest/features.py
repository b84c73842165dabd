"""Hugging Face ``datasets`` features as plain data, and their Arrow schema.

A schema is written in the JSON form of ``datasets.Features.to_dict()``
(``{"dtype": "string", "_type": "Value"}``, ``{"_type": "Nifti"}``,
``{"feature": …, "_type": "List"}``, a dict for a struct).
``datasets.Features.from_dict`` turns it into ``Features`` for loading, and
:func:`arrow_schema` gives the very schema ``Features.arrow_schema`` would,
metadata included, without importing ``datasets``: writing Parquet shards then
needs pyarrow only, and a conversion starts about two seconds sooner
(``datasets`` imports pandas). ``tests/test_features.py`` checks both against
``datasets`` itself.

Example:
    >>> from brrrr.ingest.features import NIFTI, arrow_schema, list_of, value
    >>> schema = arrow_schema({"path": value("string"), "scans": list_of(NIFTI)})
    >>> str(schema.field("scans").type)
    'list<item: struct<bytes: binary, path: string>>'
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["NIFTI", "arrow_schema", "arrow_type", "image_columns", "list_of", "value"]

#: An image cell: ``datasets.Nifti()``, stored as ``struct<bytes, path>``.
NIFTI: dict[str, Any] = {"_type": "Nifti"}


def value(dtype: str) -> dict[str, Any]:
    """``datasets.Value(dtype)``: ``"string"``, ``"int64"``, ``"float32"``…"""
    return {"dtype": dtype, "_type": "Value"}


def list_of(feature: Any, *, length: int | None = None) -> dict[str, Any]:
    """``datasets.List(feature)``, of a fixed ``length`` when given."""
    out: dict[str, Any] = {"feature": feature}
    if length is not None:
        out["length"] = length
    out["_type"] = "List"
    return out


def arrow_type(feature: Any) -> pa.DataType:
    """The Arrow type of one feature, as ``datasets`` stores it.

    Raises:
        ValueError: A feature type this module does not know.
    """
    import pyarrow as pa

    if isinstance(feature, Mapping) and "_type" not in feature:
        return pa.struct({name: arrow_type(sub) for name, sub in feature.items()})
    kind = feature.get("_type") if isinstance(feature, Mapping) else None
    if kind == "Value":
        return pa.type_for_alias(feature["dtype"])
    if kind == "Nifti":
        return pa.struct({"bytes": pa.binary(), "path": pa.string()})
    if kind == "List" and not feature.get("large", False):
        return pa.list_(arrow_type(feature["feature"]), feature.get("length", -1))
    raise ValueError(f"no Arrow type for the feature {feature!r}")


def arrow_schema(features: Mapping[str, Any]) -> pa.Schema:
    """``datasets.Features.from_dict(features).arrow_schema``, without ``datasets``.

    The ``huggingface`` metadata carries the features, so that ``datasets`` reads
    image columns back as ``Nifti``.
    """
    import pyarrow as pa

    metadata = {"huggingface": json.dumps({"info": {"features": dict(features)}})}
    return pa.schema(
        [pa.field(name, arrow_type(feature)) for name, feature in features.items()],
        metadata=metadata,
    )


def image_columns(features: Mapping[str, Any]) -> dict[str, bool]:
    """Columns holding images: name → whether it is a list of images."""
    out = {}
    for name, feature in features.items():
        if feature == NIFTI:
            out[name] = False
        elif (
            isinstance(feature, Mapping)
            and feature.get("_type") == "List"
            and feature["feature"] == NIFTI
        ):
            out[name] = True
    return out
