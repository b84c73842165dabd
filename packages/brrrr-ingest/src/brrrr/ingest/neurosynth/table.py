"""The tidy table of foci, its Parquet and ``datasets`` forms, and the export.

One row per reported focus, built on NiMARE (the ``brrrr-ingest[neurosynth]``
extra), with the columns of :func:`schema`:

* ``study_id``, ``analysis_id`` (NIMADS ids; an analysis is a contrast), ``focus``
  (its order within the analysis), ``study_name``, ``analysis_name``, and the
  study's ``authors``, ``publication``, ``year``, ``doi``, ``pmid`` when given;
* ``x``, ``y``, ``z`` and ``space``: MNI millimetres for foci reported in MNI or
  in Talairach space (converted with NiMARE's ``tal2mni``, Lancaster's
  tal2icbm transform). Foci in another or an unknown space keep their numbers
  and their own label (``OTHER``, ``UNKNOWN``, null): they are never guessed into MNI;
* ``source_space``, ``source_x``, ``source_y``, ``source_z``: as the source reported them;
* ``in_brain_mask``: whether an MNI focus falls in NiMARE's 2 mm MNI152 brain
  mask (nearest voxel); null when the focus is not in MNI. Foci outside are
  kept and reported (:func:`outside_mask`), never dropped;
* ``sample_sizes``: the group sizes the analysis (or, failing that, its study)
  declares in NIMADS ``sample_sizes``/``sample_size``; ``sample_size``: that
  number when exactly one is declared. Nothing is filled in: a missing sample
  size is null, and several groups leave ``sample_size`` null;
* ``values``: the focus's statistics (``z_stat``, ``t_stat``…) as JSON;
  ``metadata``: the study's and the analysis's metadata as JSON; ``source``.

Analyses without foci (image-only) have no row; :func:`summarize` counts them.

Example:
    >>> from brrrr.ingest.neurosynth.table import coordinates_table, to_dataset
    >>> table = coordinates_table("nimare:test_sleuth_file2.txt")  # doctest: +SKIP
    >>> table[["x", "space", "source_x", "source_space"]].iloc[0].tolist()  # doctest: +SKIP
    [-12.7..., 'MNI', -12.0, 'TAL']
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from brrrr.ingest.neurosynth.sources import load_studyset, require_nimare

if TYPE_CHECKING:
    import datasets
    import pandas as pd
    import pyarrow as pa

__all__ = [
    "COLUMNS",
    "brain_mask_membership",
    "coordinates_table",
    "export",
    "outside_mask",
    "read_parquet",
    "schema",
    "summarize",
    "tal_to_mni",
    "to_dataset",
    "write_parquet",
]

_STUDY_ATTRS = ("authors", "publication", "year", "doi", "pmid")
_ID_COLUMNS = {"id", "study_id", "contrast_id", "x", "y", "z", "space"}
# Labels sources use for MNI (NiMARE's own target names included) and Talairach.
_MNI_LABELS = frozenset({"mni", "mni152", "mni152_1mm", "mni152_2mm", "ale_2mm", "icbm"})
_TAL_LABELS = frozenset({"tal", "talairach"})

_FIELDS = (
    ("study_id", "string"),
    ("analysis_id", "string"),
    ("focus", "int32"),
    ("study_name", "string"),
    ("analysis_name", "string"),
    ("x", "float64"),
    ("y", "float64"),
    ("z", "float64"),
    ("space", "string"),
    ("source_space", "string"),
    ("source_x", "float64"),
    ("source_y", "float64"),
    ("source_z", "float64"),
    ("in_brain_mask", "bool"),
    ("sample_size", "float64"),
    ("sample_sizes", "list<float64>"),
    ("authors", "string"),
    ("publication", "string"),
    ("year", "int32"),
    ("doi", "string"),
    ("pmid", "string"),
    ("values", "string"),
    ("metadata", "string"),
    ("source", "string"),
)
COLUMNS = tuple(name for name, _ in _FIELDS)


def schema() -> pa.Schema:
    """The Arrow schema of the coordinates table (see the module docstring)."""
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "int32": pa.int32(),
        "float64": pa.float64(),
        "bool": pa.bool_(),
        "list<float64>": pa.list_(pa.float64()),
    }
    return pa.schema([(name, types[kind]) for name, kind in _FIELDS])


# --------------------------------------------------------------------------- geometry
def tal_to_mni(xyz: np.ndarray) -> np.ndarray:
    """Talairach → MNI millimetres with NiMARE's ``tal2mni`` (Lancaster's tal2icbm).

    Args:
        xyz: ``(N, 3)`` Talairach coordinates in mm.

    Returns:
        ``(N, 3)`` MNI coordinates in mm.
    """
    require_nimare()
    from nimare.utils import tal2mni

    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    if not len(xyz):
        return xyz.copy()
    # tal2mni guesses the orientation from the shape; a (3, 3) input is
    # ambiguous to it, so pad with one row and drop it again.
    padded = np.vstack([xyz, np.zeros((1, 3))]) if len(xyz) == 3 else xyz
    return np.asarray(tal2mni(padded), dtype=np.float64)[: len(xyz)]


def brain_mask_membership(xyz: np.ndarray) -> np.ndarray:
    """Whether each MNI coordinate falls in NiMARE's 2 mm MNI152 brain mask.

    Args:
        xyz: ``(N, 3)`` MNI coordinates in mm.

    Returns:
        ``(N,)`` bool: the nearest voxel is inside the grid and in the mask
        (non-finite coordinates are outside).
    """
    require_nimare()
    from nimare.utils import get_template, mm2vox

    mask = get_template("mni152_2mm", mask="brain")
    data = np.asarray(mask.dataobj).astype(bool)
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    inside = np.zeros(len(xyz), dtype=bool)
    finite = np.isfinite(xyz).all(axis=1)
    ijk = mm2vox(xyz[finite], mask.affine)
    in_grid = ((ijk >= 0) & (ijk < np.array(data.shape))).all(axis=1)
    hits = np.zeros(len(ijk), dtype=bool)
    hits[in_grid] = data[tuple(ijk[in_grid].T)]
    inside[finite] = hits
    return inside


def _space_kind(label: Any) -> Literal["MNI", "TAL", "other"]:
    lowered = label.strip().lower() if isinstance(label, str) else None
    if lowered in _MNI_LABELS:
        return "MNI"
    if lowered in _TAL_LABELS:
        return "TAL"
    return "other"


# --------------------------------------------------------------------------- the table
def _plain(value: Any) -> Any:
    """A JSON-ready copy of a metadata value (numpy → Python, NaN → None)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _dumps(value: dict[str, Any]) -> str | None:
    value = {k: v for k, v in _plain(value).items() if v is not None}
    return json.dumps(value, sort_keys=True, ensure_ascii=False) if value else None


def _text(value: Any) -> str | None:
    value = _plain(value)
    return None if value is None or value == "" else str(value)


def _year(value: Any) -> int | None:
    value = _plain(value)
    try:
        year = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return year if str(year) == str(value).strip() else None


def _analysis_rows(studyset: Any) -> dict[str, dict[str, Any]]:
    """Per-analysis columns, keyed by the ``study-analysis`` id the coordinates carry."""
    from nimare.studyset.requirements import coerced_sample_sizes

    store = studyset.store
    rows = [int(r) for r in studyset.view.index]
    study_rows = sorted({int(store.study_idx[r]) for r in rows})
    analysis_md = store.metadata.rows(rows) if store.metadata is not None else {}
    study_md = store.study_metadata.rows(study_rows) if store.study_metadata is not None else {}
    sizes = coerced_sample_sizes(store)

    def column(columns: Any, name: str, n: int) -> Any:
        # One array per column, read once: a per-row read of a sparse column
        # would rebuild the whole array for every analysis.
        return [None] * n if columns is None or name not in columns else columns.get(name)

    n_studies = len(store.study_key)
    study_columns = {
        name: column(store.study_attrs, name, n_studies) for name in ("name", *_STUDY_ATTRS)
    }
    analysis_names = column(store.analysis_attrs, "name", len(store.analysis_key))
    out = {}
    for row in rows:
        s_row = int(store.study_idx[row])
        declared = sizes[row]
        entry = {
            "study_name": _text(study_columns["name"][s_row]),
            "analysis_name": _text(analysis_names[row]),
            "sample_sizes": [float(n) for n in declared] if declared else None,
            "sample_size": float(declared[0]) if declared and len(declared) == 1 else None,
            "metadata": _dumps(
                {"study": study_md.get(s_row, {}), "analysis": analysis_md.get(row, {})}
            ),
        }
        for name in _STUDY_ATTRS:
            value = study_columns[name][s_row]
            entry[name] = _year(value) if name == "year" else _text(value)
        out[str(store.analysis_full_key[row])] = entry
    return out


def coordinates_table(
    source: Any = None, *, data_dir: str | os.PathLike[str] | None = None
) -> pd.DataFrame:
    """The tidy coordinates table of a source (columns of :func:`schema`).

    Args:
        source: See :func:`load_studyset`; NiMARE's shipped studyset by default.
        data_dir: Where NiMARE's fetchers keep downloads (online sources).

    Returns:
        A pandas DataFrame, one row per focus, in the source's order.

    Raises:
        MissingDependencyError: NiMARE is not installed.
        CoordinateSourceError: The source cannot be loaded.
    """
    import pandas as pd

    studyset, label = load_studyset(source, data_dir=data_dir)
    frame = studyset.coordinates.reset_index(drop=True)
    per_analysis = _analysis_rows(studyset)
    n = len(frame)
    source_xyz = frame[["x", "y", "z"]].to_numpy(dtype=np.float64, na_value=np.nan).reshape(n, 3)
    source_space = [_text(v) for v in frame["space"]] if "space" in frame else [None] * n
    kinds = np.array([_space_kind(v) for v in source_space], dtype=object)
    xyz = source_xyz.copy()
    tal = kinds == "TAL"
    xyz[tal] = tal_to_mni(source_xyz[tal])
    mni = kinds != "other"
    in_mask = np.full(n, None, dtype=object)
    in_mask[mni] = brain_mask_membership(xyz[mni])
    value_columns = [c for c in frame.columns if c not in _ID_COLUMNS]
    values = [_dumps(r) for r in frame[value_columns].to_dict("records")] if value_columns else None
    analyses = [per_analysis[str(key)] for key in frame["id"]]
    table = pd.DataFrame(
        {
            "study_id": frame["study_id"].astype(str).to_numpy(),
            "analysis_id": frame["contrast_id"].astype(str).to_numpy(),
            "focus": frame.groupby("id", sort=False).cumcount().to_numpy(dtype=np.int32),
            "x": xyz[:, 0],
            "y": xyz[:, 1],
            "z": xyz[:, 2],
            "space": [
                "MNI" if kind != "other" else space
                for kind, space in zip(kinds, source_space, strict=True)
            ],
            "source_space": source_space,
            "source_x": source_xyz[:, 0],
            "source_y": source_xyz[:, 1],
            "source_z": source_xyz[:, 2],
            "in_brain_mask": in_mask,
            "values": values if values is not None else [None] * n,
            "source": label,
        }
    )
    for name in ("study_name", "analysis_name", "sample_size", "sample_sizes", *_STUDY_ATTRS):
        table[name] = [a[name] for a in analyses]
    table["metadata"] = [a["metadata"] for a in analyses]
    # Through Arrow and back, so this frame is exactly what read_parquet gives back.
    table = _from_arrow(_arrow(table))
    table.attrs["analyses"] = len(per_analysis)
    table.attrs["studies"] = len(studyset.study_ids)
    return table


def outside_mask(table: pd.DataFrame) -> pd.DataFrame:
    """The MNI foci outside NiMARE's 2 mm brain mask (kept in the table, listed here)."""
    rows = table["in_brain_mask"].eq(False).fillna(False).to_numpy(dtype=bool)
    columns = ["study_id", "analysis_id", "focus", "x", "y", "z", "source_space"]
    return table.loc[rows, columns].reset_index(drop=True)


def summarize(table: pd.DataFrame) -> dict[str, Any]:
    """Counts for people: studies, analyses, foci, spaces, conversions, mask, sample sizes."""
    per_analysis = table.drop_duplicates(["study_id", "analysis_id"])
    analyses_total = table.attrs.get("analyses", per_analysis.shape[0])
    return {
        "source": str(table["source"].iloc[0]) if len(table) else None,
        "studies": int(table.attrs.get("studies", table["study_id"].nunique())),
        "studies_with_foci": int(table["study_id"].nunique()),
        "analyses": int(analyses_total),
        "analyses_with_foci": int(per_analysis.shape[0]),
        "foci": len(table),
        "source_spaces": {
            ("null" if k is None or k != k else str(k)): int(v)
            for k, v in table["source_space"].value_counts(dropna=False).items()
        },
        "converted_tal_to_mni": int((table["source_space"].map(_space_kind) == "TAL").sum()),
        "not_in_mni": int((table["space"] != "MNI").sum()),
        "outside_brain_mask": int(table["in_brain_mask"].eq(False).sum()),
        "analyses_with_sample_size": int(per_analysis["sample_sizes"].notna().sum()),
    }


# --------------------------------------------------------------------------- outputs
def _arrow(table: pd.DataFrame) -> pa.Table:
    import pyarrow as pa

    return pa.Table.from_pandas(table[list(COLUMNS)], schema=schema(), preserve_index=False)


def write_parquet(table: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write the table as one Parquet file with the :func:`schema` types; returns the path."""
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(_arrow(table), tmp)
    os.replace(tmp, path)
    return path


def _from_arrow(arrow: pa.Table) -> pd.DataFrame:
    table = arrow.to_pandas()
    table["in_brain_mask"] = table["in_brain_mask"].astype("boolean")
    table["sample_size"] = table["sample_size"].astype("Float64")
    table["year"] = table["year"].astype("Int32")
    return table


def read_parquet(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a table written by :func:`write_parquet` back into pandas, nulls kept as nulls."""
    import pyarrow.parquet as pq

    return _from_arrow(pq.read_table(path, schema=schema()))


def to_dataset(table: pd.DataFrame) -> datasets.Dataset:
    """The table as a Hugging Face ``datasets.Dataset`` (same columns and types)."""
    import datasets

    return datasets.Dataset(datasets.table.InMemoryTable(_arrow(table)))


def export(
    source: Any,
    out: str | os.PathLike[str],
    *,
    output_format: Literal["parquet", "dataset"] = "parquet",
    data_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Build the table of ``source`` and write it, with a JSON report beside it.

    Args:
        source: See :func:`load_studyset` (``None``: NiMARE's shipped studyset).
        out: A ``.parquet`` file, or a folder for ``output_format="dataset"``
            (``datasets.Dataset.save_to_disk``).
        output_format: ``"parquet"`` or ``"dataset"``.
        data_dir: Where NiMARE's fetchers keep downloads (online sources).

    Returns:
        :func:`summarize`'s counts plus ``"output"`` and ``"report"`` paths. The
        report (``OUT.report.json``) holds the counts and every focus outside
        the brain mask.
    """
    table = coordinates_table(source, data_dir=data_dir)
    out = Path(out)
    if output_format == "dataset":
        to_dataset(table).save_to_disk(str(out))
    else:
        write_parquet(table, out)
    summary = summarize(table)
    report = out.with_name(out.name + ".report.json")
    outside = outside_mask(table).to_dict("records")
    report.write_text(
        json.dumps({**summary, "outside_brain_mask_foci": _plain(outside)}, indent=1),
        encoding="utf-8",
    )
    return {**summary, "output": str(out), "report": str(report)}
